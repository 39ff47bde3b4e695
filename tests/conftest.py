import os

# The Hub is unreachable here: fail at once instead of retrying for half a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite's expectations are float32's: `--dtype auto` must not turn bf16 because this CPU has AVX512-BF16
# (layercut.settings.precision). tests/settings/test_precision.py asks for bf16 where it tests it.
os.environ["LAYERCUT_CPU_BF16"] = "0"

import pytest  # noqa: E402

import torch  # noqa: E402

from tests.tiny_models import tiny_model_folder, write_review_file  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """The tests' own $LAYERCUT_CACHE: they never write rankings of throwaway models into the user's cache, and
    never lean on a model converted or a ranking computed before the session (a fresh CI machine has neither)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("LAYERCUT_CACHE", str(tmp_path_factory.mktemp("layercut-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matrices gain nothing from threads, and on a shared CPU waiting threads cost a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def review_file(tmp_path_factory):
    return write_review_file(tmp_path_factory.mktemp("data") / "reviews.jsonl")


@pytest.fixture(scope="session")
def tiny_llama_folder(tmp_path_factory):
    """A local model folder (tiny random Llama + word-level tokenizer) usable by any layercut command."""
    return tiny_model_folder("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def smollm2():
    """The real packaged SmolLM2-135M, converted once into the layercut cache."""
    from layercut.model.sources import resolve_source

    return resolve_source("smollm2-135m").location
