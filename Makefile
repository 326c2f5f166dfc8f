# `make book` builds the whole book; `make test` runs the tests. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
BOOK_FLAGS ?= -W -n --keep-going

.PHONY: book test data setup ffmpeg soundfonts bubblewrap chromium browser-check clean clean-cache benchmarks results student teacher verify

# Notebooks whose code is unchanged come from .jupyter_cache/; the others execute first, one per core.
book: setup data
	$(PY) -m sepbook.build.prebuild
	$(VENV)/bin/jupyter-book build . $(BOOK_FLAGS)
	@echo "Open _build/html/index.html"

# one test process per core (pytest-xdist), each test file in one of them so that its fixtures are made
# once; each test runs torch on one thread (tests/conftest.py)
test: setup
	$(PY) -m pytest -q -n auto --dist loadfile

data: setup
	$(PY) -m sepbook.data.corpora

setup: $(READY) ffmpeg soundfonts bubblewrap chromium

$(READY): requirements.lock pyproject.toml
	@$(PYTHON) -c "import ensurepip" 2>/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
		else echo "$(PYTHON) cannot create virtual environments: install python3-venv" >&2; exit 1; fi; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(READY)

# The grader walls each submission in with bubblewrap (sepbook.classroom.sandbox); without it, grading
# needs --unsafe-no-sandbox, so a machine that cannot install it only hears about it.
bubblewrap:
	@command -v bwrap >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	else \
		echo "bubblewrap is missing: the grader needs it to run submissions apart ('sudo apt-get install bubblewrap')." >&2; \
	fi

# The browser check (python -m sepbook.build.browser) loads the built pages in a headless Chromium;
# without it, only that check cannot run, so a machine that cannot install it only hears about it.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "chromium and chromedriver are missing: the browser check needs them ('sudo apt-get install chromium chromium-driver')." >&2; \
	fi

# Every page of the built book loaded in a real (headless) browser: images, players, formulas,
# overflow at a phone's and a desktop's width, links, requests outside the book.
browser-check: setup
	$(PY) -m sepbook.build.browser

# musdb calls ffprobe even for WAV folders.
ffmpeg:
	@command -v ffprobe >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	else \
		echo "ffmpeg (with ffprobe) is missing: install it, e.g. 'sudo apt-get install ffmpeg' or 'brew install ffmpeg', then run make again." >&2; exit 1; \
	fi

# The General-MIDI SoundFonts the songs are played by (Debian packages, installed as root) and
# tinysoundfont, without the pyaudio it declares for live playback, which the book never does.
soundfonts: $(READY)
	@$(PY) -c "from sepbook.data import soundfonts; soundfonts.install()"

# Train a chapter's whole `book` experiment on the CPU and write chapters/$(CHAPTER)/results/book/
# (resumes if interrupted). Example: make results CHAPTER=adversarial
results: setup
	@test -n "$(CHAPTER)" || { echo "name the chapter: make results CHAPTER=foundations (or adversarial)" >&2; exit 1; }
	$(PY) -m sepbook.results $(CHAPTER)

# Every committed number re-derived: every committed checkpoint on every test song, then a random
# sample of runs trained again from scratch (sepbook/results/verify.py). VERIFY_FLAGS="--seed N" replays a draw.
VERIFY_FLAGS ?=
verify: setup data
	$(PY) -m sepbook.results.verify $(VERIFY_FLAGS)

# Student editions of every chapter with exercises: solutions replaced by stubs, outputs cleared.
# Grade them with: $(PY) -m sepbook.classroom.grade FOLDER --csv marks.csv
STUDENT_DIR ?= _build/student
student: setup
	$(PY) -m sepbook.classroom $(STUDENT_DIR)

# The teacher's edition: the same notebooks with their solutions, each written answer followed by its
# rubric (chapters/teachers/rubrics.yml).
TEACHER_DIR ?= _build/teacher
teacher: setup
	$(PY) -m sepbook.classroom --teacher $(TEACHER_DIR)

# The Colab install check (.ci/colab.py): fresh venvs holding what Colab holds (COLAB_SET=colab) and the
# newest release of everything (COLAB_SET=newest), each running a page from its first cell and the fast tests.
COLAB_SET ?= all
.PHONY: colab-check
colab-check: ffmpeg
	$(PYTHON) .ci/colab.py --set $(COLAB_SET)

benchmarks: setup data
	$(PY) benchmarks/run.py

# The execution cache survives `make clean`; `make clean-cache` re-executes every notebook next time.
clean:
	rm -rf _build

clean-cache:
	rm -rf .jupyter_cache
