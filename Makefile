# Everything runs in .venv; `make setup` builds it from constraints.txt (torch pinned to 2.13.0).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GPT2KIT := $(VENV)/bin/gpt2kit
STAMP := $(VENV)/.installed
# test processes: most tests are small and many start a CLI subprocess, so two cores run the
# suite in about two thirds of the time of one process
TEST_WORKERS ?= 2

.PHONY: setup chromium demo test bench lint clean default-model

setup: $(STAMP) chromium

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,all]'
	touch $(STAMP)

# the playground's browser test drives Debian's chromium through Playwright (Playwright's own browser
# download is not used); without chromium that one test is skipped
CHROMIUM ?= chromium
chromium:
	@if command -v $(CHROMIUM) >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "no $(CHROMIUM) and no apt-get: the playground test will be skipped"; \
	elif [ "$$(id -u)" != 0 ]; then echo "no $(CHROMIUM): run 'apt-get install chromium' as root, or the playground test is skipped"; \
	else echo "installing Debian's chromium for the playground test"; \
		log=$$( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium) 2>&1) || { echo "$$log"; exit 1; }; fi

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
