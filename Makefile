PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv demo test test-slow lint bench screenshots clean

$(BIN)/batchgen: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/batchgen

demo: venv
	rm -rf runs/demo
	@echo "demo: the simulator answers at each model's usual latency (gpt-image-1 high ~50 s) x 0.05"
	$(BIN)/batchgen run jobs/demo.jsonl --provider sim --run-dir runs/demo \
	    --sim-faults 'server=0.1,rate_limit=0.05,content_policy=0.05' --sim-rpm 300 \
	    --sim-model-latency --sim-time-scale 0.05 || test $$? -eq 1
	$(BIN)/batchgen score runs/demo --provider sim --judge gpt-4o-mini
	$(BIN)/batchgen resume runs/demo --regenerate-below 6 --quiet --yes || test $$? -eq 1
	$(BIN)/batchgen report runs/demo --format html
	$(BIN)/batchgen report runs/demo

# the default set: every behaviour, at small scale (the scale-size runs are marked slow)
test: venv
	$(BIN)/python -m pytest -q -n 2

# the gates .ci/run runs before the tests: any ruff or mypy finding fails the build. The lint
# tools (pinned in pyproject's `lint` extra) go into the same venv, installed when missing
$(BIN)/ruff: pyproject.toml | $(BIN)/batchgen
	$(BIN)/pip install -q -e '.[test,lint]'
	@touch $@

lint: $(BIN)/ruff
	$(BIN)/ruff check batchgen tests bench
	$(BIN)/ruff format --check batchgen tests bench
	$(BIN)/mypy

# the scale-size end-to-end scenarios (5,000-job batch, 1,000-job kill -9, long mixed runs)
test-slow: venv
	$(BIN)/python -m pytest -q -m slow

bench: test-slow
	$(BIN)/python -m bench
	$(BIN)/python -m bench.screenshots

# docs/screenshots/*.png: the demo's HTML report and a spec grid in headless Chromium, 1400 px
# wide (apt-get install -y chromium); look at them after changing the report
screenshots: venv
	$(BIN)/python -m bench.screenshots

clean:
	rm -rf $(VENV) runs bench/results.json
