# Stockade: the two commands a fresh machine needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= stockade.toml
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# Node packages for the browser-side client tests (tests/js: xmpp.js and Strophe.js over
# WebSocket).
JS_DIR   := tests/js
JS_STAMP := $(JS_DIR)/node_modules/.installed

.PHONY: run test bench clean config-reference feature-table

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# Exactly the versions in package-lock.json; again only when package*.json change. Node and
# npm come from Debian's packages when missing and we may install them (root or sudo);
# otherwise the Node tests say what is missing.
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y -q nodejs npm; \
		elif sudo -n true 2>/dev/null; then sudo apt-get install -y -q nodejs npm; fi; \
	fi
	@if command -v npm >/dev/null 2>&1; then \
		cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "npm not found and not installable here: tests/js packages not installed"; \
	fi

# Prosody, the independent server tests/e2e/test_audit_prosody.py audits: Debian's package
# when missing and we may install it (root or sudo -n), else that test is skipped. The test
# runs its own Prosody on ports the OS picks, so a system Prosody that the package may start
# on 5222/5269 is left alone and never used.
.PHONY: prosody
prosody:
	@if ! command -v prosody >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
		else SUDO=none; fi; \
		if [ "$$SUDO" != none ]; then $$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q prosody >/dev/null \
			|| echo "prosody not installable here: tests/e2e/test_audit_prosody.py is skipped"; fi; \
	fi

run: $(STAMP)
	$(BIN)/stockade serve $(if $(wildcard $(CONFIG)),--config $(CONFIG))

test: $(STAMP) $(JS_STAMP) prosody
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) var build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache \
		$(JS_DIR)/node_modules

# Prints the configuration reference table that README.md embeds (a test keeps them equal).
config-reference: $(STAMP)
	@$(BIN)/python -c "from stockade.server.config import reference_markdown; print(reference_markdown())"

# Prints the feature table README.md embeds (a test keeps them equal).
feature-table: $(STAMP)
	@$(BIN)/python -c "from stockade.server.registry import feature_table; print(feature_table())"
