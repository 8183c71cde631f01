# Lint: ruff (rules and formatting, config in pyproject.toml) and mypy on the library (qwenvl_data/).
# `.ci/run` runs it before the tests; `make fmt` applies ruff's fixes and formatting.
.PHONY: lint fmt
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
