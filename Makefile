# techmatch: two commands set everything up on a new machine.
#   make run   - install, prepare the model, load the demo seeds once, build indexes, serve
#   make test  - install, prepare the model and the browser, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 5000
export TECHMATCH_INSTANCE ?= $(CURDIR)/instance
export HF_HUB_OFFLINE := 1

.PHONY: run test setup model browser lint bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

model: $(STAMP) $(TECHMATCH_INSTANCE)/config.py
	$(BIN)/techmatch model prepare

# Debian's Chromium for the Playwright tests (never a browser downloaded by a tool).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	else echo "chromium 未安装, 浏览器测试将跳过 / chromium missing: run 'sudo apt-get install chromium' to run the browser tests"; fi

$(TECHMATCH_INSTANCE)/config.py: | $(STAMP)
	mkdir -p $(TECHMATCH_INSTANCE)
	$(BIN)/python -c "import secrets; print(f'SECRET_KEY = {secrets.token_hex(32)!r}\nDEMO_MODE = True')" > $@

run: model
	$(BIN)/techmatch db init
	$(BIN)/techmatch seed --demo
	$(BIN)/techmatch index verify
	$(BIN)/techmatch matches verify
	@echo "演示账号 / demo accounts: enterprise-demo, institution-demo, broker-demo, admin-demo; 密码 / password: demo-pass-2026"
	@echo "登录 / log in at http://$(HOST):$(PORT)/auth/login"
	@if [ -n "$$REDIS_URL$$TECHMATCH_REDIS_URL" ]; then \
		echo "启动后台任务 / starting the alert worker (Redis)"; $(BIN)/techmatch worker & \
	fi; \
	$(BIN)/techmatch serve --host $(HOST) --port $(PORT)

test: model browser
	$(BIN)/python -m pytest -ra

lint: $(STAMP)
	$(BIN)/ruff check matcher embeddings web seeds tests benchmarks

bench: model
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) instance test-output
