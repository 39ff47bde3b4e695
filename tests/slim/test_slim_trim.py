"""Vocabulary trimming on tiny models: plain reload, same pieces and scores on the corpus, any text still runs."""

import json

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from layercut.cli.main import main
from layercut.run.predict import load_predictor
from layercut.slim.trim import choose_tokens, trim_vocabulary
from tests.cli import assert_one_line_error, run_cli
from tests.tiny_models import POSITIVE, tiny_bpe_tokenizer, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

CORPUS = POSITIVE + ["what is the name of the city ?", "who won the game ?"]
OUTSIDE = "Zebras 😀 quietly eat naïve software in Reykjavík"


@pytest.fixture(scope="module")
def bpe_folder(tmp_path_factory):
    """A tiny Llama over a byte-level BPE tokenizer with merges (SmolLM2's kind), as a model folder."""
    folder = tmp_path_factory.mktemp("bpe-llama")
    tokenizer = tiny_bpe_tokenizer()
    config = tiny_config("llama")
    config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trimmed_folder(bpe_folder, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "texts.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    out = tmp_path_factory.mktemp("trimmed") / "model"
    assert main(["cut", str(bpe_folder), "--keep-first", "2", "--trim-vocab", str(corpus), "-o", str(out)]) == 0
    return out


def test_trimmed_model_reloads_with_plain_transformers_and_is_smaller(bpe_folder, trimmed_folder):
    record = json.loads((trimmed_folder / "layercut.json").read_text())
    vocabulary = record["vocabulary"]
    model = AutoModelForCausalLM.from_pretrained(trimmed_folder)  # no trust_remote_code, no custom class
    tokenizer = AutoTokenizer.from_pretrained(trimmed_folder)
    assert type(model) is transformers.LlamaForCausalLM
    assert model.config.vocab_size == len(tokenizer) == vocabulary["vocab_size"] == len(vocabulary["kept_source_ids"])
    assert vocabulary["vocab_size"] < vocabulary["source_vocab_size"] == len(AutoTokenizer.from_pretrained(bpe_folder))
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still tied
    assert record["parameters_after"] == model.num_parameters()
    assert vocabulary["kept_by_reason"]["merge paths"] > 0 and vocabulary["kept_by_reason"]["corpus"] > 0


def test_corpus_texts_keep_their_pieces_and_scores(bpe_folder, trimmed_folder):
    old_tokenizer = AutoTokenizer.from_pretrained(bpe_folder)
    new_tokenizer = AutoTokenizer.from_pretrained(trimmed_folder)
    kept = json.loads((trimmed_folder / "layercut.json").read_text())["vocabulary"]["kept_source_ids"]
    old_model = AutoModelForCausalLM.from_pretrained(bpe_folder, num_hidden_layers=2).eval()
    new_model = AutoModelForCausalLM.from_pretrained(trimmed_folder).eval()
    for text in CORPUS:
        old_ids = old_tokenizer(text)["input_ids"]
        new_ids = new_tokenizer(text)["input_ids"]
        assert old_tokenizer.convert_ids_to_tokens(old_ids) == new_tokenizer.convert_ids_to_tokens(new_ids)
        assert [kept[i] for i in new_ids] == old_ids
        with torch.no_grad():
            old_logits = old_model(torch.tensor([old_ids])).logits[0, -1, kept]
            new_logits = new_model(torch.tensor([new_ids])).logits[0, -1]
        torch.testing.assert_close(new_logits, old_logits, rtol=1e-5, atol=1e-5)


def test_an_outside_text_still_tokenizes_into_smaller_pieces_and_runs(bpe_folder, trimmed_folder):
    old_tokenizer = AutoTokenizer.from_pretrained(bpe_folder)
    new_tokenizer = AutoTokenizer.from_pretrained(trimmed_folder)
    ids = new_tokenizer(OUTSIDE)["input_ids"]
    assert new_tokenizer.decode(ids) == OUTSIDE  # nothing became unknown: the byte alphabet is kept
    assert len(ids) > len(old_tokenizer(OUTSIDE)["input_ids"])
    with torch.no_grad():
        logits = AutoModelForCausalLM.from_pretrained(trimmed_folder)(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(new_tokenizer)) and torch.isfinite(logits).all()


def test_merges_that_never_fire_on_the_corpus_are_dropped_and_the_rest_suffice():
    tokenizer = tiny_bpe_tokenizer()
    chosen = choose_tokens(tokenizer, ["good movie"], keep_words=["Positive"])
    kept_tokens = set(tokenizer.convert_ids_to_tokens(chosen.kept_ids))
    assert {"Ġmovie", "ood"} <= kept_tokens and "Ġplot" not in kept_tokens
    assert (
        set(tokenizer.convert_ids_to_tokens(tokenizer(" Positive", add_special_tokens=False)["input_ids"]))
        <= kept_tokens
    )
    # Every intermediate symbol BPE builds for a kept token is kept too, or the merge could not fire.
    model = transformers.LlamaForCausalLM(tiny_config("llama"))
    model.resize_token_embeddings(len(tokenizer))
    _, trimmed, record = trim_vocabulary(model, tokenizer, ["good movie"], ["Positive"], "one text")
    assert trimmed.tokenize("good movie") == tokenizer.tokenize("good movie")
    assert record["vocab_size"] == len(trimmed) < len(tokenizer)


def test_a_trimmed_run_model_predicts_as_before(tiny_llama_folder, review_file, tmp_path):
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_llama_folder),
                "--layers",
                "first:2",
                "--data",
                str(review_file),
                "--template",
                "Review: {text} Sentiment:",
                "--label-words",
                "Negative,Positive",
                "--shots",
                "4",
                "--method",
                "icl",
                "--max-length",
                "64",
                "--out",
                str(run_dir),
                "--save-model",
            ]
        )
        == 0
    )
    assert main(["trim", str(run_dir / "model"), "-o", str(tmp_path / "trimmed")]) == 0
    record = json.loads((tmp_path / "trimmed" / "layercut.json").read_text())
    assert record["vocabulary"]["vocab_size"] < record["vocabulary"]["source_vocab_size"]
    assert record["task"]["name"] == "reviews" and record["run_key"]
    texts = ["good movie !", "awful plot .", "boring story the a"]  # task texts: same scores
    before = load_predictor(run_dir / "model").predict(texts)
    after = load_predictor(tmp_path / "trimmed").predict(texts)
    for (label_before, probs_before), (label_after, probs_after) in zip(before, after):
        assert label_before == label_after
        assert probs_after == pytest.approx(probs_before, abs=1e-5)
    assert load_predictor(tmp_path / "trimmed").predict(["Zebras everywhere"])  # unknown words still run


def test_a_cut_folder_trims_to_a_corpus_and_predicts_the_same_pieces(bpe_folder, trimmed_folder, tmp_path):
    """`layercut cut` writes no task and no head into layercut.json; `trim --corpus` must still work on it."""
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    assert main(["cut", str(bpe_folder), "--keep-first", "2", "-o", str(tmp_path / "cut")]) == 0
    assert main(["trim", str(tmp_path / "cut"), "--corpus", str(corpus), "-o", str(tmp_path / "trimmed")]) == 0
    from_cut = json.loads((tmp_path / "trimmed" / "layercut.json").read_text())["vocabulary"]
    cut_with_trim = json.loads((trimmed_folder / "layercut.json").read_text())["vocabulary"]
    assert from_cut["kept_source_ids"] == cut_with_trim["kept_source_ids"]  # trim after cut = cut --trim-vocab
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "trimmed")
    assert model.config.vocab_size == from_cut["vocab_size"] < from_cut["source_vocab_size"]
    assert_one_line_error(
        run_cli("trim", trimmed_folder, "--corpus", corpus, "-o", tmp_path / "again"), "already trimmed"
    )


def test_bad_trim_input_fails_in_one_line(tiny_llama_folder, bpe_folder, tmp_path):
    assert_one_line_error(
        run_cli("cut", bpe_folder, "--keep-first", "1", "--trim-vocab", tmp_path / "missing.txt", "-o", tmp_path / "a"),
        "corpus file",
    )
    assert_one_line_error(
        run_cli("cut", bpe_folder, "--keep-first", "1", "--trim-vocab", "no-such-task", "-o", tmp_path / "b"),
        "unknown task 'no-such-task'",
    )
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "1", "-o", str(tmp_path / "cut")]) == 0
    assert_one_line_error(run_cli("trim", tmp_path / "cut", "-o", tmp_path / "c"), "was not adapted to a task")


def test_a_tokenizer_kind_trimming_does_not_support_is_refused():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from layercut.errors import LayercutError

    wordpiece = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordPiece({"[UNK]": 0, "good": 1}, unk_token="[UNK]"))
    )
    with pytest.raises(LayercutError, match="supports BPE and word-level tokenizers, not WordPiece"):
        choose_tokens(wordpiece, ["good"])
