# Everything runs in .venv; `make setup` builds it from constraints.txt (torch pinned to 2.13.0).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GPT2KIT := $(VENV)/bin/gpt2kit
STAMP := $(VENV)/.installed
DEMO_MODEL := .demo/model

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(DEMO_MODEL)/model.safetensors: $(STAMP)
	$(GPT2KIT) init --config tiny --out $(DEMO_MODEL) --overwrite

demo: $(DEMO_MODEL)/model.safetensors
	$(GPT2KIT) generate --model $(DEMO_MODEL) --prompt "In the beginning" --max-new-tokens 40 \
		--temperature 0.8 --top-k 40 --seed 0

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) bench/decode.py

lint: setup
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis
