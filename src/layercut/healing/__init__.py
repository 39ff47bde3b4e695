"""Repairs for what a cut removed: partial fine-tuning (Lu et al. 2024), a least-squares linear bridge folded
into the weights (ReplaceMe, 2025), and distillation from a teacher's class distribution (Minitron)."""
