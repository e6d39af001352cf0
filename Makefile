# Everything runs in .venv; `make setup` builds it from constraints.txt (torch pinned to 2.13.0).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GPT2KIT := $(VENV)/bin/gpt2kit
STAMP := $(VENV)/.installed
# test processes: most tests are small and many start a CLI subprocess, so two cores run the
# suite in about two thirds of the time of one process
TEST_WORKERS ?= 2

.PHONY: setup demo test bench lint clean default-model

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,all]'
	touch $(STAMP)

# generation from the model gpt2kit ships (trained on the King James Bible by scripts/train_default_model.sh)
demo: setup
	$(GPT2KIT) generate --prompt "And the LORD said" --max-new-tokens 80 --temperature 0.8 --top-k 40 --seed 0

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS)

bench: setup
	# llama-cpp-python builds llama.cpp from source (cmake and a C++ compiler; 20-30 minutes on 2 cores, once)
	CMAKE_ARGS="-DGGML_NATIVE=ON" $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[bench]'
	$(PY) bench/decode.py
	$(PY) bench/train.py --quick

lint: setup
	$(VENV)/bin/ruff check src tests bench

default-model: setup
	sh scripts/train_default_model.sh

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis
