"""`nasfer search` after a third review, as a user runs it: a folder of the other backend, flags that only mean
something with another setting. Toy rewards: no child is trained."""

import json

import pytest
from fixtures_nas import fake_latency

from nasfer.cli import main
from nasfer.errors import ModelError
from nasfer.nas.config import SearchConfig, check_config
from nasfer.nas.search import LOG_FILE, search

TOY = dict(strategy="random", budget_minutes=5, blocks=2, rungs=("10s@24",), latency_target_ms=0.0,
           max_latency_ms=0.0, progress=False)


def _toy(spec, fidelity):
    """A deterministic accuracy from the spec (no training)."""
    return (len(json.dumps(spec, sort_keys=True)) % 97) / 100


def test_the_local_backend_refuses_a_ray_search_folder(tmp_path):
    """Before: without --backend ray, a Ray search's folder (no search_state.pt) was taken for a new search, whose
    lines were appended to the Ray search's log and whose result files replaced the Ray search's. Now refused, as
    the Ray backend refuses a local search's folder; nothing there changes."""
    out = tmp_path / "s"
    out.mkdir()
    ray_line = json.dumps({"kind": "child", "rung": 0, "child": 0, "key": "k", "trial_id": "t0", "job": 1}) + "\n"
    (out / LOG_FILE).write_text(ray_line)
    (out / "ray_clock.json").write_text(json.dumps({"elapsed_s": 12.0}) + "\n")
    (out / "ray_tune").mkdir()
    with pytest.raises(ModelError, match="search of the Ray backend; continue it with --backend ray"):
        search(SearchConfig(out=str(out), max_children=2, **TOY), _toy, latency=fake_latency)
    assert (out / LOG_FILE).read_text() == ray_line
    assert sorted(p.name for p in out.iterdir()) == sorted([LOG_FILE, "ray_clock.json", "ray_tune"])


@pytest.mark.parametrize("kwargs, flags", [({"F": 8}, "--filters only applies"),
                                           ({"N": 1}, "--cells only applies"),
                                           ({"F": 8, "N": 1}, "--filters, --cells only apply")])
def test_nasnet_size_flags_are_refused_with_the_macro_space(kwargs, flags):
    """Before: `--space macro --filters 8` (or --cells) was accepted and did nothing (the macro space has no F or N)."""
    with pytest.raises(ValueError, match=f"{flags} with --space nasnet"):
        check_config(SearchConfig(space="macro", **kwargs))
    check_config(SearchConfig(space="nasnet", **kwargs))  # where they mean something


def test_the_cli_refuses_filters_with_the_macro_space_in_one_line(tmp_path, capsys):
    assert main(["search", "--data", str(tmp_path), "--out", str(tmp_path / "s"), "--filters", "8"]) == 2
    assert "--filters only applies with --space nasnet" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


class SlowChildProblem:
    """A child over --max-latency-ms at every rung (as nasfer.nas.ray_backend.ChildProblem scores it)."""

    n_rungs = 3
    eta = 3

    def __init__(self):
        self.rungs = []

    def evaluate(self, spec, rung, done):
        self.rungs.append(rung)
        return {"score": 0.0, "accuracy": 0.0, "objective": 0.0, "seconds": 0.0, "latency": {"ms_per_face_b1": 9.0},
                "infeasible": True}


def test_a_ray_trial_of_a_child_too_slow_ends_at_rung_0(monkeypatch):
    """Before: the trial of a child over --max-latency-ms went on rung after rung while ASHA let it (the first
    results of a rung always go on), so search_log.jsonl logged it 'promoted' with accuracy 0 and pareto.json
    put it among rung 1's points, though the README says such children are never promoted, as in the local
    backend. Now its trial ends after its rung-0 result."""
    tune = pytest.importorskip("ray.tune")
    from nasfer.nas.ray_tune import child_trial

    reported = []
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda metrics, checkpoint=None: reported.append(metrics))
    problem = SlowChildProblem()
    child_trial({"spec": {}}, problem=problem)
    assert problem.rungs == [0] and [m["rung"] for m in reported] == [0]


def test_a_search_folder_given_as_genotype_points_to_its_best_arch(tmp_path):
    """Before: `nasfer train --genotype runs/search` (the search's folder, not its best_arch.json) said
    'architecture file not found', though the folder is there."""
    from nasfer.nas.space import read_spec

    (tmp_path / "best_arch.json").write_text("{}")
    with pytest.raises(ModelError, match=r"is a folder, not an architecture file; give .*best_arch\.json"):
        read_spec(tmp_path)
    with pytest.raises(ModelError, match="architecture file not found"):
        read_spec(tmp_path / "missing.json")


def test_a_json_file_that_is_no_architecture_says_so(tmp_path):
    """Before: a search's summary.json given as --genotype said "missing 'normal' and 'reduction' cell", as if it
    were a damaged genotype; a genotype that lacks one cell still says which."""
    from nasfer.nas.space import model_from_file

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"best": {"child": 0}, "train_command": "nasfer train ..."}))
    with pytest.raises(ModelError, match=r"not an architecture file .*best_arch\.json"):
        model_from_file(summary)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"normal": [[0, "identity", 1, "identity"]]}))
    with pytest.raises(ModelError, match="missing 'reduction' cell"):
        model_from_file(partial)


@pytest.mark.parametrize("content", ['{"best": {"child": 0}, "children": 3}\n', "[1, 2]\n", "a,b\n1,2\n"])
def test_a_latency_cache_that_is_another_file_is_refused_not_overwritten(tmp_path, content):
    """Before: --latency-cache naming another file (a search's summary.json by mistake, a CSV) was read as a
    damaged cache and replaced by the latency cache. Now refused before anything is done; a cut-off cache
    (damaged) or an empty file is still taken and rewritten."""
    from nasfer.nas.latency import LatencyCacheError, check_cache_location

    other = tmp_path / "summary.json"
    other.write_text(content)
    cfg = SearchConfig(out=str(tmp_path / "s"), max_children=1, latency_cache=str(other),
                       **{**TOY, "latency_target_ms": 2.0})
    with pytest.raises(LatencyCacheError, match="is not a latency cache"):
        search(cfg, _toy)
    assert other.read_text() == content and not (tmp_path / "s").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no lock file beside it either
    for fine in ('{"machine": {}, "entries": {"k": {"ms_per_fa', "", '{"entries": {}}'):
        other.write_text(fine)
        check_cache_location(other)


def test_the_progress_bar_says_why_a_job_has_no_accuracy():
    """Before: a child skipped for latency showed acc=0.000 on the bar, as if trained to chance and worse."""
    from nasfer.nas.results import bar_accuracy

    assert bar_accuracy({"accuracy": 0.41234}) == "0.412"
    assert bar_accuracy({"accuracy": 0.0, "infeasible": True}) == "skipped (latency)"
    assert bar_accuracy({"accuracy": 0.0, "failed": "RuntimeError: out of memory"}) == "failed"
    assert bar_accuracy({"kind": "duplicate"}) == "-"


def test_flags_of_another_strategy_are_noted_as_ignored(tmp_path):
    """Before: `nasfer search --strategy random --population 8 --reinforce-batch 4` ran as if neither flag were
    given, without a word. Now the search's notes (printed, and in summary.json) say they were ignored."""
    from nasfer.nas.config import unused_strategy_flags

    assert unused_strategy_flags(SearchConfig(strategy="random", population=8, reinforce_batch=4)) == [
        "--reinforce-batch only applies with --strategy reinforce: ignored by --strategy random",
        "--population only applies with --strategy evolution: ignored by --strategy random"]
    assert unused_strategy_flags(SearchConfig(strategy="evolution", population=8, tournament=3)) == []
    assert unused_strategy_flags(SearchConfig(strategy="reinforce", reinforce_batch=4)) == []
    cfg = SearchConfig(out=str(tmp_path / "s"), **{**TOY, "max_children": 2}, population=8, tournament=3)
    search(cfg, _toy, latency=fake_latency)
    notes = json.loads((tmp_path / "s" / "summary.json").read_text())["notes"]
    assert "--population, --tournament only apply with --strategy evolution: ignored by --strategy random" in notes


@pytest.mark.parametrize("where", ["ray_folder", "latency_cache"])
def test_the_local_search_refuses_its_locations_before_reading_the_dataset(tmp_path, where):
    """Before: the local backend read (and split) the whole dataset, a minute for FER2013, before refusing an
    --out that holds a Ray search or an --latency-cache that is another file; the missing dataset here would
    have been the error reported. Now the location is refused first, as the Ray backend does."""
    from nasfer.nas.latency import LatencyCacheError

    out = tmp_path / "s"
    cfg = dict(out=str(out), data=str(tmp_path / "no-such-dataset.zip"), max_children=1, **TOY)
    if where == "ray_folder":
        (out / "ray_tune").mkdir(parents=True)
        expected = (ModelError, "holds a search of the Ray backend")
    else:
        other = tmp_path / "summary.json"
        other.write_text('{"best": {"child": 0}}\n')
        cfg["latency_cache"] = str(other)
        expected = (LatencyCacheError, "is not a latency cache")
    with pytest.raises(expected[0], match=expected[1]):
        search(SearchConfig(**cfg))
