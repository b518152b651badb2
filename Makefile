# ngx_omnibus_module: make | make run | make test | make bench
NGINX_SRC  ?= /usr/share/nginx/src
BUILD      := build
NGINX_BIN  ?= /usr/sbin/nginx
MODULE     := objs/ngx_omnibus_module.so
CC_OPT     := -O2 -g -Wall -Wextra -Wno-unused-parameter -Werror

# Debian packages the build, the tests, `make run` and `make bench` need.
PKGS := nginx nginx-dev libyajl-dev librdkafka-dev kcat libpq-dev postgresql \
        libhiredis-dev redis-server \
        perl libjson-xs-perl prometheus curl \
        gnuplot-nox wrk nghttp2-client libnginx-mod-nchan \
        yamllint libyaml-libyaml-perl unzip docker-compose \
        prometheus-alertmanager

SOURCES := ngx_omnibus_module.c $(shell find src -name '*.[ch]')
CONFIGS := config $(shell find src -name config)

.PHONY: all deps run test bench clean

all: $(MODULE)

deps:
	@./scripts/deps.sh $(PKGS)

# configure once per change of the module's build script; --with-debug as
# Debian's nginx is built, so that `error_log ... debug` traces the module
$(BUILD)/nginx/objs/Makefile: $(CONFIGS) Makefile
	@test -d $(NGINX_SRC)/auto || $(MAKE) --no-print-directory deps
	rm -rf $(BUILD)/nginx && mkdir -p $(BUILD)
	cp -a $(NGINX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && ./configure --with-compat --with-debug \
	    --with-cc-opt='$(CC_OPT)' --add-dynamic-module=$(CURDIR) \
	    > configure.log 2>&1 || { tail -30 configure.log; exit 1; }

$(MODULE): $(BUILD)/nginx/objs/Makefile $(SOURCES)
	$(MAKE) -s -C $(BUILD)/nginx -f objs/Makefile modules
	mkdir -p objs
	cp $(BUILD)/nginx/objs/ngx_omnibus_module.so $(MODULE).tmp
	mv -f $(MODULE).tmp $(MODULE)  # running nginx keep the old file

run: deps $(MODULE)
	mkdir -p $(BUILD)/run/logs
	sed 's|@MODULE@|$(CURDIR)/$(MODULE)|' conf/omnibus.conf \
	    > $(BUILD)/run/nginx.conf
	$(NGINX_BIN) -p $(CURDIR)/$(BUILD)/run -c nginx.conf -g 'daemon off;'

test: deps $(MODULE)
	OMNIBUS_NGINX=$(NGINX_BIN) prove -r -I t/lib t/

# about 25 minutes with the 10-minute soak; writes bench/RESULTS.md and
# bench/results.png
bench: deps $(MODULE)
	NGINX_BIN=$(NGINX_BIN) ./bench/run.sh

clean:
	rm -rf $(BUILD) objs

# libFuzzer harnesses (fuzz/): build them under $(BUILD)/fuzz with clang
# and the sanitizers, then run each for FUZZ_SECONDS; fails on any finding,
# leaving the reproducer in $(BUILD)/fuzz/artifacts/
FUZZ_SECONDS ?= 30

.PHONY: fuzz

fuzz:
	./fuzz/build.sh $(BUILD)/fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./fuzz/run.sh $(BUILD)/fuzz

# NGINX (Debian's source) and the module built by clang with ASan and
# UBSan under build/sanitize/, then the whole suite against them: fails on
# a report from the module's code, lists NGINX's own (scripts/sanitize.sh)
.PHONY: test-sanitize

test-sanitize: deps
	@./scripts/deps.sh clang dpkg-dev binutils
	./scripts/sanitize.sh

# NGINX 1.26 from Debian 13 (trixie)'s source and the module, built with
# CC_OPT (-Werror) under build/nginx-1.26/, then the whole suite on them
# (scripts/test-nginx.sh); a second run reuses the source and the build
.PHONY: test-nginx-1.26

test-nginx-1.26: deps
	CC_OPT='$(CC_OPT)' ./scripts/test-nginx.sh trixie 1.26

# The image (docker/Dockerfile) built, run, published to, read and
# stopped with SIGQUIT; starts a private Docker daemon when none answers
# and makes the debian:12 base locally when it cannot be pulled
.PHONY: test-image

test-image:
	./scripts/test-image.sh
