# pgm-lab: `make book` builds the executed HTML book, `make test` passes every test.
# Each target creates .venv (unless a virtual environment is active), installs the pinned
# set (constraints.txt) plus pgm_lab in editable mode, and skips that when nothing changed.

PYTHON ?= python3
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := $(CURDIR)/.venv
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.pgm-lab-installed
PROFILE ?= quick
# EDITION=reader (solutions folded) or EDITION=course (solutions and hidden checks out,
# the download button serves the student copy); see book/instructor_guide.md
EDITION ?= reader
BOOK_OUT := _build/$(PROFILE)$(if $(filter course,$(EDITION)),-course,)
PIP := $(BIN)/python -m pip
# torch's OpenMP threads spin while they wait: on a busy machine that made a 65 s training
# cell take over 900 s. Measured at load 5-8 on 2 cores, a 2-thread PixelCNN step took
# 840-1600 ms with the default policy and 130-210 ms with PASSIVE (1 thread: 70-150 ms).
# Exported to every kernel the targets start.
OMP_WAIT_POLICY ?= PASSIVE
export OMP_WAIT_POLICY

.PHONY: install book test lab bench bench-peers lint format clean browser sandbox release-check slides

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c constraints.txt -e '.[book,dev,grade]'
	@touch $@

browser:
	@{ command -v chromium && test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc; } >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium and a CJK font for the browser test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null; }

# pgm-lab grade runs each student kernel in a bubblewrap sandbox (Debian package bubblewrap).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  echo "installing Debian's bubblewrap for the grading sandbox"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq bubblewrap >/dev/null; }

JCACHE := $(BOOK_OUT)/_build/.jupyter_cache
BOOK_BUILD := env -u MPLBACKEND PGM_LAB_PROFILE=$(PROFILE) PGM_LAB_EDITION=$(EDITION) $(BIN)/jupyter-book build . --path-output $(BOOK_OUT) -W -n --keep-going
book: install
	@if [ -f $(JCACHE)/global.db ] && [ -n "$$(find pgm_lab -name '*.py' -newer $(JCACHE)/global.db)" ]; then \
	  echo "pgm_lab changed since the chapters were executed: executing them again"; rm -rf $(JCACHE); fi
	$(BOOK_BUILD) || { echo "The build failed; retrying once (executed chapters are cached; a cell that timed out can be nbclient waiting on widget messages, jupyter/nbclient#312)"; $(BOOK_BUILD); }
	@echo
	@echo "The book is built: open $(CURDIR)/$(BOOK_OUT)/_build/html/index.html"

test: install browser sandbox
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# one run on 2 workers (tests/conftest.py schedules it): the smoke book's build and tests on
	@# one worker; nbval (each chapter in order on one worker, every answer-key cell run twice),
	@# the unit and grading tests wherever a worker is free
	PGM_LAB_THREADS=1 PGM_LAB_PROFILE=smoke $(BIN)/pytest -p no:cacheprovider -n 2 --dist loadgroup \
	  --nbval-lax --nbval-current-env --durations=15 tests chapters

# Before handing out copies: every chapter's student copy leaks nothing, the reference earns
# full marks and the unsolved copy none (each chapter graded in the sandbox; minutes).
release-check: install sandbox
	PGM_LAB_THREADS=1 $(BIN)/pgm-lab release --out _build/release --check

# JupyterLab on chapters/ for a live lecture (RISE slideshows: Alt+R in a notebook). Prints the
# URL to open (with its token); as root (containers, lab servers) it adds --allow-root. Another
# port: make lab PORT=8890; reachable from outside a container: make lab IP=0.0.0.0
PORT ?= 8888
IP ?= 127.0.0.1
lab: install
	$(BIN)/pgm-lab lab --port $(PORT) --ip $(IP)

# Static reveal.js decks of every chapter, from the book's executed notebooks (make book first),
# fully offline: reveal.js and MathJax are copied beside them; linked from each chapter's page.
SLIDES_OUT := $(BOOK_OUT)/slides
EXECUTED := $(BOOK_OUT)/_build/jupyter_execute/chapters
slides: install
	@ls $(EXECUTED)/*.ipynb >/dev/null 2>&1 || { echo "no executed chapters in $(EXECUTED): run make book first (PROFILE=$(PROFILE))"; exit 1; }
	$(BIN)/pgm-lab slides --edition $(EDITION) --out $(SLIDES_OUT) $(EXECUTED)/*.ipynb
	@if [ -d $(BOOK_OUT)/_build/html ]; then rm -rf $(BOOK_OUT)/_build/html/_slides && cp -r $(SLIDES_OUT) $(BOOK_OUT)/_build/html/_slides && echo "linked from the book: $(BOOK_OUT)/_build/html/_slides"; fi

bench: install
	$(BIN)/python benchmarks/run.py

# Peers that cannot share our environment get their own (.venv-peers/NAME, e.g. pgmax 0.6.1 with
# jax 0.4.30) and are measured in the same run as ours; a peer that cannot be installed is
# reported and its row skipped. `make bench` measures them too once the environment exists.
bench-peers: install
	$(BIN)/python benchmarks/peers/venv.py
	$(BIN)/python benchmarks/run.py grid_bp

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf _build .pytest_cache .ruff_cache
