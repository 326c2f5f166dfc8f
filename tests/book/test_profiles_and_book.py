import pytest

from sepbook import book
from sepbook.data import profiles


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("SEPBOOK_PROFILE", "book")
    assert profiles.current() == "book"
    monkeypatch.setenv("SEPBOOK_PROFILE", "huge")
    with pytest.raises(ValueError, match="SEPBOOK_PROFILE"):
        profiles.current()


def test_every_chapter_has_every_profile_and_they_grow():
    for chapter, table in profiles.SETTINGS.items():
        assert set(table) == set(profiles.PROFILES), chapter
        for key in [k for k in table["book"] if k == "steps" or k.endswith("_steps")]:
            assert table["tiny"][key] < table["book"][key] <= table["paper"][key], (chapter, key)
    cfg = profiles.settings("foundations", "tiny")
    assert cfg["profile"] == "tiny"
    cfg["steps"] = -1  # a copy: the table itself stays intact
    assert profiles.settings("foundations", "tiny")["steps"] > 0


@pytest.mark.parametrize("chapter, profile, match", [("nope", "tiny", "chapter"), ("foundations", "big", "profile")])
def test_settings_reject_unknown_names(chapter, profile, match):
    with pytest.raises(ValueError, match=match):
        profiles.settings(chapter, profile)


@pytest.mark.parametrize("override, match", [
    (dict(stepz=3), "stepz"),
    (dict(steps=2.5), "steps: expected an integer"),
    (dict(steps=True), "steps"),
    (dict(lr="fast"), "lr: expected float"),
    (dict(sources="vocals"), "sources: expected tuple"),
    (dict(steps=0), "steps: expected a positive number"),
    (dict(lr=-1e-3), "lr: expected a positive number"),
    (dict(batch_size=-4), "batch_size"),
])
def test_bad_overrides_are_refused_naming_the_setting(override, match):
    with pytest.raises(ValueError, match=match):
        profiles.settings("foundations", "tiny", **override)


def test_overrides_replace_settings_and_accept_json_lists():
    cfg = profiles.settings("foundations", "tiny", steps=7, lr=1, seeds=[4, 5], sources=["vocals", "bass"])
    assert cfg["steps"] == 7 and cfg["lr"] == 1
    assert cfg["seeds"] == (4, 5) and cfg["sources"] == ("vocals", "bass")  # lists read back from JSON
    assert profiles.settings("adversarial", "tiny", eval_window=3.0)["eval_window"] == 3.0  # None defaults take a value


def test_unknown_override_message_lists_exactly_the_overridable_settings():
    with pytest.raises(ValueError) as raised:
        profiles.settings("foundations", "tiny", stepz=3)
    for name in profiles.SETTINGS["foundations"]["tiny"]:
        assert repr(name) in str(raised.value), name
    assert "'profile'" not in str(raised.value)


def test_digest_follows_the_settings_not_their_spelling():
    cfg = profiles.settings("adversarial", "book")
    assert profiles.digest(cfg) == profiles.digest(dict(reversed(list(cfg.items()))))
    assert profiles.digest(cfg) == profiles.digest(profiles.settings("adversarial", "book", seeds=list(cfg["seeds"])))
    assert profiles.digest(cfg) != profiles.digest(profiles.settings("adversarial", "book", steps=cfg["steps"] + 1))
    assert profiles.digest(cfg) != profiles.digest(profiles.settings("adversarial", "tiny"))


def test_setup_reports_and_returns_the_profile(monkeypatch, capsys):
    import torch

    import sepbook

    monkeypatch.setenv("SEPBOOK_PROFILE", "book")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert book.setup() == "book"
        if not torch.cuda.is_available():
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert f"sepbook {sepbook.__version__}" in out and "profile: book" in out


def test_show_source_is_the_real_source():
    from sepbook.metrics import si_sdr

    shown = book.show_source(si_sdr)
    assert "def si_sdr(" in shown.data and "sepbook/metrics.py" in shown.data
    assert '"""' not in book.show_source(si_sdr, docstring=False).data
    with pytest.raises(ValueError, match="obj"):
        book.source(42)


def test_static_build_flag(monkeypatch):
    monkeypatch.setenv(book.STATIC_ENV, "1")
    assert book.static_build()
    monkeypatch.setenv(book.STATIC_ENV, "0")
    assert not book.static_build()


def test_docstring_is_dropped_even_after_a_long_signature():
    from sepbook.recipes.adversarial.training import critic_step

    shown = book.show_source(critic_step, docstring=False).data
    assert "def critic_step(" in shown and "Chapter:" not in shown and "return logs" in shown


def test_one_thread_limits_torch_and_blas_in_this_process():
    import threadpoolctl
    import torch

    torch.set_num_threads(2)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        profiles.one_thread()
        assert torch.get_num_threads() == 1
        blas = [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
        assert blas and set(blas) == {1}, blas
