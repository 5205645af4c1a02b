# taskpipes: `make run` shows the flagship pipeline, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# 0: any free port; the simulator prints the one it got.
SIM_PORT ?= 0
PYTEST_ARGS ?=
# `make test` runs its main pass in this many pytest-xdist workers. Most tests wait on
# servers and child processes, so three workers on 2 cores halve the pass (595 s -> ~300 s).
# A module goes to one worker whole (--dist loadscope): a module-scoped fixture (a browser,
# the Prometheus scenario, a built wheel) is set up once, not once per worker.
TEST_WORKERS ?= 3
# `make test` ends each pass with its slowest tests: where the suite's time goes, every run.
DURATIONS ?= 25
# The RabbitMQ end-to-end tests run again on quorum queues: a representative few in
# `make test`, all of them in `make faults`.
QUORUM_TESTS ?= tests/e2e/test_github_top_rabbitmq.py tests/e2e/test_crash_loop.py tests/e2e/test_dlq.py \
	tests/integration/test_publish.py tests/e2e/test_rabbitmq_send.py
QUORUM_ALL := $(QUORUM_TESTS) tests/e2e/test_scheduler.py tests/e2e/test_status.py \
	tests/e2e/test_tick_age.py tests/e2e/test_observability.py tests/faults
# The quorum pass is about queue types, not load: a fifth of the burst's pages, a tenth of
# its ticks (the classic pass runs the issue's full size).
QUORUM_BURST := FAULTS_BURST_REPOS=5 FAULTS_BURST_ROLLUP_TICKS=100
# `make faults` ends within 100 minutes (issue 19): each pass has a bound, about twice
# what it takes on this 2-core machine loaded by other suites (the classic pass ~31 min,
# the quorum pass ~20 min). A pass still running then gets SIGINT (pytest names the test
# it was in and tears its servers down; SIGKILL 5 min later if that hangs) and fails.
# Every scenario also has its own, shorter pytest timeout in its module.
FAULTS_CLASSIC_MIN ?= 60
FAULTS_QUORUM_MIN ?= 40
BOUNDED := timeout --foreground --signal=INT --kill-after=300
# The hashed lock of the image's dependencies (`make lock`), and the tool that writes it.
LOCK := requirements.lock
UV_VERSION := 0.13.8

.PHONY: install run test check faults bench lint lock screenshots clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

# What `make run` needs: the kit and its dependencies, not the test tools (Playwright,
# schemathesis, mypy, ...).
$(BIN)/.installed-run: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# A simulated day of github_top ticks on SQLite with the in-process broker and the bundled
# GitHub simulator, then the top-10 table and what to try next.
run: $(BIN)/.installed-run
	@$(BIN)/taskpipes github-sim --port $(SIM_PORT) --search-limit 100000 > .github-sim.log 2>&1 & \
	sim=$$!; trap "kill $$sim 2>/dev/null" EXIT; \
	for i in $$(seq 100); do grep -q listening .github-sim.log 2>/dev/null && break; sleep 0.1; done; \
	url=$$(sed -n 's/^github-sim listening on //p' .github-sim.log); \
	test -n "$$url" || { cat .github-sim.log; echo "the GitHub simulator did not start"; exit 1; }; \
	$(BIN)/taskpipes db upgrade && GITHUB_API_URL=$$url $(BIN)/taskpipes demo && \
	echo && echo "next: $(BIN)/taskpipes serve, then open http://127.0.0.1:8000/ (the top list)" \
		"and http://127.0.0.1:8000/pipelines (the runs); $(BIN)/taskpipes status for the same in the terminal"

# The quorum re-run goes alongside the main pass, not after it: both mostly wait on
# processes and servers, so on 2 cores it costs the main pass little of its 60 s. Each has
# its own databases, virtual hosts and ports; its output is printed after the main pass's.
QUORUM_LOG := .quorum-pass.log

test: install
	@TASKPIPES_QUEUE_TYPE=quorum $(BIN)/pytest -q -p no:cacheprovider --durations=$(DURATIONS) \
		$(QUORUM_TESTS) > $(QUORUM_LOG) 2>&1 & quorum_pid=$$!; \
	main=0; quorum=0; \
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=$(DURATIONS) $(PYTEST_ARGS) \
		|| main=$$?; \
	wait $$quorum_pid || quorum=$$?; \
	echo "make test: main pass exit $$main, quorum re-run exit $$quorum; the quorum re-run:"; \
	cat $(QUORUM_LOG); rm -f $(QUORUM_LOG); \
	test $$main$$quorum = 00

# Both passes run even when the first fails; the target fails if either did (124: over
# its bound).
faults: install
	@classic=0; quorum=0; \
	$(BOUNDED) $(FAULTS_CLASSIC_MIN)m $(BIN)/pytest -q -m faults $(PYTEST_ARGS) || classic=$$?; \
	TASKPIPES_QUEUE_TYPE=quorum $(QUORUM_BURST) $(BOUNDED) $(FAULTS_QUORUM_MIN)m \
		$(BIN)/pytest -q -m "faults or not faults" $(QUORUM_ALL) || quorum=$$?; \
	echo "make faults: classic pass exit $$classic, quorum pass exit $$quorum (0: passed, 124: over its bound)"; \
	test $$classic$$quorum = 00

bench: install
	@for script in bench/store.py bench/rollup.py bench/api.py bench/spread.py bench/crashguard.py bench/overhead.py bench/memory.py; do \
		test -f $$script || continue; \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

# The web pages at 375 and 1280 px, from a browser test over real pipeline runs, into docs/.
screenshots: install
	SCREENSHOTS_DIR=docs $(BIN)/pytest -q tests/e2e/test_web.py -k "browser and sqlite"

# The image's pinned, hashed dependencies (the Dockerfile installs them with --require-hashes):
# the runtime set of pyproject.toml and its build backend, for every platform, on Python 3.11.
# uv is installed into .venv here only: `make install` and `make test` never need it.
lock: install
	$(BIN)/pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(BIN)/uv pip compile pyproject.toml - --quiet --generate-hashes --universal \
			--python-version 3.11 --custom-compile-command 'make lock' -o $(LOCK)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The inner loop, in under 2 minutes: lint, types, the import contracts, the documentation
# site built strictly (a broken link, anchor or API reference fails it; ~5 s) and the unit
# tests (tests/unit: pure, no services, no processes).
check: lint
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d site
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis taskpipes.db* site
