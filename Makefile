# The user-facing commands.  CMake does the building; this file only strings
# the steps together.
#
#   make           build build/orchestrator-host (and build/orchestrator-device)
#   make run       install what is missing, build, run with config/orchestrator-host.json
#   make test      install what the tests need, build, and run the suite in
#                  one go over two trees: as built and under AddressSanitizer
#                  + UBSan, unit tests in both, each integration file in the
#                  tree where it says most (tests/CMakeLists.txt)
#                  (make test-release / make test-asan: all of it in one tree)
#   make demo      broker + host + three simulated devices
#   make bench     the benchmark suite (bench/)
#   make fuzz      the libFuzzer targets of tests/fuzz/ under ASan+UBSan, built
#                  with clang in build-fuzz/, FUZZ_SECONDS (60) each, from the
#                  committed seeds; FUZZ_JOBS=2 runs two at a time,
#                  FUZZ_TARGETS="cron rest" only those (tests/fuzz/run.sh).
#                  `make test` replays the seeds without clang.
#   make install   PREFIX=/usr/local by default
#   make docker-build / docker-run   the container image (needs a Docker engine)

BUILD      ?= build
ASAN_BUILD ?= build-asan
PREFIX     ?= /usr/local
CONFIG     ?= config/orchestrator-host.json
JOBS       ?= $(shell nproc)
IMAGE      ?= orchestrator-host
FUZZ_BUILD ?= build-fuzz
FUZZ_CC    ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_JOBS  ?= 1
FUZZ_TARGETS ?=
# docker-run: the broker, and the directory holding tokens.json (the API
# tokens, docs/deploy-http.md), mounted read-only as a secret.
# ctest -j: most tests wait (timers, brokers, round trips) rather than
# compute, so several run per core; tests/CMakeLists.txt gives the busy ones
# more of these slots and the long ones a head start.
TEST_JOBS  ?= $(shell echo $$(( $(JOBS) * 2 )))
SANITIZER_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
MQTT_HOST  ?= host.docker.internal
SECRETS    ?= $(CURDIR)/var/secrets
# ON for make test: each integration file in one of the two trees, unless
# it says something about the shipped binary (tests/CMakeLists.txt); OFF
# for test-release and test-asan; unset, a tree keeps what it had.
TEST_SPLIT ?=
MAKEFLAGS  += --no-print-directory

.PHONY: all build build-quiet build-asan deps deps-test run test test-both test-release test-asan demo bench \
	fuzz install clean docker-build docker-run

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
		$(if $(TEST_SPLIT),-DOH_TEST_SPLIT=$(TEST_SPLIT)) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# For run and demo: the build's output only when it fails, so that the
# host's first lines are the first thing on the screen (a build with
# nothing to do still prints a "Built target" line per target).
build-quiet:
	@echo "building in $(BUILD)/ (make build shows the progress)"
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) > $(BUILD)/build.log 2>&1 || \
		{ cat $(BUILD)/build.log; echo "the build failed (its output: $(BUILD)/build.log)"; exit 1; }

build-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DOH_SANITIZE=ON \
		$(if $(TEST_SPLIT),-DOH_TEST_SPLIT=$(TEST_SPLIT)) >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

deps:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

run: deps build-quiet
	@BUILD=$(BUILD) scripts/run-host.sh $(CONFIG)

# The test packages (Chromium, RabbitMQ, ...) are not needed to compile:
# they install while both trees build.
test: deps
	@mkdir -p $(BUILD)
	@echo "installing the test packages meanwhile (scripts/install-deps.sh test)"
	@scripts/install-deps.sh test > $(BUILD)/deps-test.log 2>&1 & deps=$$!; \
	$(MAKE) build build-asan TEST_SPLIT=ON; rc=$$?; \
	wait $$deps; drc=$$?; cat $(BUILD)/deps-test.log; \
	[ $$drc -eq 0 ] || echo "installing the test packages failed"; \
	[ $$rc -eq 0 ] && [ $$drc -eq 0 ]
	@$(MAKE) test-both

# Both trees' tests in one CTest run ($(BUILD)/all-tests lists the two): one
# scheduler for all (the longest first, slots per test), one summary, a
# failure if any test of either fails.
test-both:
	@mkdir -p $(BUILD)/all-tests
	@printf 'subdirs("%s")\nsubdirs("%s")\n' "$(abspath $(BUILD))" "$(abspath $(ASAN_BUILD))" \
		> $(BUILD)/all-tests/CTestTestfile.cmake
	@n=$$(cd $(BUILD) && ctest -N | sed -n 's/^Total Tests: //p'); \
	echo "tests 1-$$n: $(BUILD) (release); the rest: $(ASAN_BUILD) (ASan+UBSan)"; \
	cd $(BUILD)/all-tests && $(SANITIZER_ENV) ctest -j$(TEST_JOBS) --output-on-failure; rc=$$?; \
	if [ $$rc -ne 0 ] && [ -f Testing/Temporary/LastTestsFailed.log ]; then \
		awk -F: -v n=$$n '{ print "  " $$2 " in " ($$1 <= n ? "$(BUILD)" : "$(ASAN_BUILD)") }' \
			Testing/Temporary/LastTestsFailed.log; \
	fi; \
	exit $$rc

test-release:
	@$(MAKE) build TEST_SPLIT=OFF
	cd $(BUILD) && ctest -j$(TEST_JOBS) --output-on-failure

test-asan:
	@$(MAKE) build-asan TEST_SPLIT=OFF
	cd $(ASAN_BUILD) && $(SANITIZER_ENV) ctest -j$(TEST_JOBS) --output-on-failure

demo: deps build-quiet
	@BUILD=$(BUILD) scripts/demo.sh

bench: deps-test build
	@BUILD=$(BUILD) bench/run.sh

fuzz:
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=$(FUZZ_CC) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DOH_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzzers
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TARGETS)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

docker-build:
	docker build -t $(IMAGE) .

docker-run:
	docker run --rm -it --name orchestrator-host \
		-p 8080:8080 --add-host=host.docker.internal:host-gateway \
		-e OH_MQTT_HOST=$(MQTT_HOST) -e OH_MQTT_PORT=1883 \
		$(if $(OH_MQTT_USERNAME),-e OH_MQTT_USERNAME -e OH_MQTT_PASSWORD) \
		-v orchestrator-state:/var/lib/orchestrator-host \
		-v $(SECRETS)/tokens.json:/run/secrets/orchestrator-host-tokens.json:ro \
		$(IMAGE)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
