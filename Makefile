# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

## demo: install, pretrain on the built-in dataset (no download), print kNN top-1 before and after
demo: $(STAMP)
	$(VENV)/bin/edgessl pretrain recipes/quickstart.yaml

## test: install everything and run the test suite
test: $(STAMP)
	$(PY) -m pytest -q -ra

clean:
	rm -rf $(VENV) runs exported .pytest_cache
