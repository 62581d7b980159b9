# Saga Lab. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench lab clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[lab,notebooks,cluster,dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf results/demo-reconnect_race
	$(PY) -m simlab run reconnect_race --runs 2000 --out results/demo-reconnect_race
	$(PY) -m simlab report results/demo-reconnect_race -o results/demo-reconnect_race/report.html

# mypy runs beside the suite (its output shown after it): on two cores it costs the suite about half its 40 s,
# instead of adding all of it before the suite starts. Both must pass.
test: lint
	@log=$$(mktemp); $(PY) -m mypy > "$$log" 2>&1 & typecheck=$$!; \
	$(PY) -m pytest -n auto --dist loadgroup; unit=$$?; \
	wait $$typecheck; typed=$$?; echo "mypy:"; cat "$$log"; rm -f "$$log"; \
	test $$unit -eq 0 && test $$typed -eq 0

lint: $(STAMP)
	$(PY) -m ruff check sagas simlab tests benchmarks notebooks
	$(PY) -m ruff format --check sagas simlab tests benchmarks notebooks

typecheck: $(STAMP)
	$(PY) -m mypy

# One pytest worker per core: the suite is CPU-bound, and its tests share nothing but the Redis
# server, where each uses keys of its own.
unit: $(STAMP)
	$(PY) -m pytest -n auto --dist loadgroup

# JupyterLab on the notebooks (each runs top to bottom in under two minutes with its default sizes),
# on 127.0.0.1 only, behind a token: open the URL it prints (with ?token=...). `make lab LAB_PORT=9999`
# for another port; JUPYTER_TOKEN=... in the environment sets the token. Jupyter refuses to start as
# root without --allow-root; containers and CI run as root, and the loopback bind and the token are
# what keep the server private there, so it is passed when the user is root.
LAB_PORT ?= 8888
lab: $(STAMP)
	@echo "JupyterLab on http://127.0.0.1:$(LAB_PORT)/lab (open the URL with its token, printed below); Ctrl-C stops it"
	$(PY) -m jupyter lab --notebook-dir=notebooks --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) \
		--ServerApp.port_retries=0 $(if $(filter 0,$(shell id -u)),--allow-root)

# Every figure of issue 12's table, judged (benchmarks/README.md). `make bench BENCH_ARGS=--quick`
# for a smaller run that only shows it works. Exit status 0 whatever the verdicts, 1 if a
# measurement's verification failed.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) benchmarks/bench_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
