# ndo: one-command set-up on a fresh Debian 12 machine.
#   make demo   install what is missing, build (Release), run a three-node mesh scan of a lab from two vantages
#   make demo-local  the single-node scan of the same loopback lab (banners, TLS reports)
#   make test   install what is missing, build, run every test (ctest)
#   make test-sanitize  the same under ASan + UBSan (Debug, in build-asan)
#   make fuzz   the libFuzzer targets of tests/fuzz, FUZZ_SECONDS (60) each (clang, in build-fuzz)
#   make bench  the network-namespace testbed benchmark against nmap and masscan (root)
#   make meshsim  the mesh's simulated acceptance figures (docs/meshsim/, ~20 min, ~13 GB RAM)
BUILD_DIR ?= build
BUILD_TYPE ?= Release
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

# Debian packages: build, libraries, test tools (xmllint and nmap's DTD and
# ndiff check the XML output), and what the testbed benchmark drives.
BUILD_PACKAGES := g++ cmake ninja-build ccache pkg-config libboost-dev libboost-system-dev libssl-dev \
  capnproto libcapnp-dev librocksdb-dev libcli11-dev libgtest-dev libgmock-dev
# iproute2 and nftables: the network-namespace tests (testbed, mesh partition)
# run where the machine allows it (root) and skip elsewhere.
TEST_PACKAGES := libxml2-utils nmap ndiff iproute2 nftables
BENCH_PACKAGES := masscan nftables iproute2 time
MESHSIM_PACKAGES := gnuplot-nox time
# clang 14 and its libFuzzer runtime, for `make fuzz`.
FUZZ_PACKAGES := clang libclang-rt-14-dev

SANITIZE_BUILD_DIR ?= build-asan
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps bench-deps configure build test test-sanitize fuzz demo demo-local bench meshsim clean

all: build

# Installs only what is missing (non-interactive); a no-op on a ready machine.
deps:
	@scripts/install-deps.sh $(BUILD_PACKAGES) $(TEST_PACKAGES)

bench-deps:
	@scripts/install-deps.sh $(BUILD_PACKAGES) $(TEST_PACKAGES) $(BENCH_PACKAGES)

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS); fi

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

# `make test` in its own build directory, with -DNDO_SANITIZE=ON, Debug.
test-sanitize:
	$(MAKE) test BUILD_DIR=$(SANITIZE_BUILD_DIR) BUILD_TYPE=Debug CMAKE_FLAGS="$(CMAKE_FLAGS) -DNDO_SANITIZE=ON"

# Every fuzz target (or FUZZ_TARGETS) for FUZZ_SECONDS each; non-zero on any finding.
fuzz:
	@scripts/install-deps.sh $(BUILD_PACKAGES) $(FUZZ_PACKAGES)
	JOBS=$(JOBS) scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

demo: build
	BUILD_DIR=$(BUILD_DIR) simulations/demo/mesh_demo.sh

demo-local: build
	BUILD_DIR=$(BUILD_DIR) simulations/demo/demo.sh

bench: bench-deps build
	$(SUDO) simulations/testbed/bench.sh

meshsim: build
	@scripts/install-deps.sh $(MESHSIM_PACKAGES)
	simulations/meshsim/run_acceptance.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
