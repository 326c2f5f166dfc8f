import pytest

from sepbook import book, profiles


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("SEPBOOK_PROFILE", "book")
    assert profiles.current() == "book"
    monkeypatch.setenv("SEPBOOK_PROFILE", "huge")
    with pytest.raises(ValueError, match="SEPBOOK_PROFILE"):
        profiles.current()


def test_default_profile_follows_cuda(monkeypatch):
    import torch

    monkeypatch.delenv("SEPBOOK_PROFILE", raising=False)
    assert profiles.current() == ("book" if torch.cuda.is_available() else "tiny")


def test_every_chapter_has_every_profile_and_they_grow():
    for chapter, table in profiles.SETTINGS.items():
        assert set(table) == set(profiles.PROFILES), chapter
        assert table["tiny"]["steps"] < table["book"]["steps"] <= table["paper"]["steps"]
    cfg = profiles.settings("foundations", "tiny")
    assert cfg["profile"] == "tiny"
    cfg["steps"] = -1  # a copy: the table itself stays intact
    assert profiles.settings("foundations", "tiny")["steps"] > 0


@pytest.mark.parametrize("chapter, profile, match", [("nope", "tiny", "chapter"), ("foundations", "big", "profile")])
def test_settings_reject_unknown_names(chapter, profile, match):
    with pytest.raises(ValueError, match=match):
        profiles.settings(chapter, profile)


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


def test_glue_returns_its_value():
    assert book.glue("x", 3.0) == 3.0


def test_docstring_is_dropped_even_after_a_long_signature():
    from sepbook.adversarial import critic_step

    shown = book.show_source(critic_step, docstring=False).data
    assert "def critic_step(" in shown and "Chapter:" not in shown and "return logs" in shown
