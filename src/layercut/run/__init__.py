"""One run: its configuration (config), the setup of what it adapts (prepare), the recipe (pipeline),
and prediction with a saved model (predict)."""
