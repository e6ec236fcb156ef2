SHELL := /bin/bash
# tearline — the two commands a new user needs:
#   make run    install Debian packages, build, start a node with sample data
#   make test   install Debian packages, build, run every test (ctest)
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
export CCACHE_DIR ?= $(HOME)/.cache/tearline-ccache

.PHONY: tsan all deps build run test bench sanitize fuzz clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run-node $(BUILD)/tearline

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	$(BUILD)/bench_ingest

# ASan+UBSan build with clang; the same tests must pass there.
sanitize: deps
	cmake -S . -B $(BUILD)-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DTEARLINE_SANITIZE=ON
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && TEARLINE_QUICK=1 ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer (clang) over the concurrent parts: the store (group commit, read snapshots),
# the Releaser's caches and the TAXII server under concurrent requests.
tsan: deps
	cmake -S . -B $(BUILD)-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	  "-DCMAKE_CXX_FLAGS=-fsanitize=thread -fno-omit-frame-pointer" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread"
	cmake --build $(BUILD)-tsan -j $(JOBS) --target tearline store_test policy_test taxii_test
	cd $(BUILD)-tsan && TSAN_OPTIONS=halt_on_error=1 ./store_test && \
	  TSAN_OPTIONS=halt_on_error=1 ./policy_test --gtest_filter=-PolicyOracle.* && \
	  TSAN_OPTIONS=halt_on_error=1 ./taxii_test

# Short libFuzzer runs of every parser target (clang, ASan+UBSan); CI runs this after `make test`.
FUZZ_SECONDS ?= 15
fuzz: deps
	cmake -S . -B $(BUILD)-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DTEARLINE_SANITIZE=ON
	cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzz_validate fuzz_pattern
	for t in validate pattern; do \
	  mkdir -p $(BUILD)-fuzz/corpus-$$t && \
	  $(BUILD)-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -seed=1 -max_len=65536 -print_final_stats=1 \
	    $(BUILD)-fuzz/corpus-$$t fuzz/corpus/$$t 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
