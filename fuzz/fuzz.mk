# The harnesses, linked against the module's core (and the delivery
# layer's breaker) and NGINX's own objects, all built with the same
# sanitizers.  Run by fuzz/build.sh, which configures and compiles NGINX
# first; not meant to be run by hand.
#
#   make -f fuzz/fuzz.mk ROOT=... OUT=... NGX_SRC=... NGX_OBJS=... CC=...

HARNESSES := json ndjson topic msg_id params zone

FUZZ_CFLAGS := -g -O1 -fno-omit-frame-pointer \
               -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=undefined

NGX_INCS := -I$(NGX_SRC)/src/core -I$(NGX_SRC)/src/event \
            -I$(NGX_SRC)/src/event/modules -I$(NGX_SRC)/src/os/unix \
            -I$(NGX_OBJS)
MOD_INCS := -I$(ROOT)/src -I$(ROOT)/src/core -I$(ROOT)/src/delivery \
            -I$(ROOT)/src/backends

WARN := -Wall -Wextra -Wno-unused-parameter

# the whole core layer, whatever files it has, and the breaker: only the
# objects a harness needs are taken from the archives
MOD_SRCS := $(wildcard $(ROOT)/src/core/*.c) \
            $(ROOT)/src/delivery/ngx_omnibus_breaker.c
MOD_OBJS := $(patsubst $(ROOT)/src/%.c,$(OUT)/obj/module/%.o,$(MOD_SRCS))

# NGINX's objects but main()'s
NGX_OBJ_LIST := $(filter-out $(NGX_OBJS)/src/core/nginx.o, \
                    $(shell find $(NGX_OBJS) -name '*.o'))

BINS := $(addprefix $(OUT)/bin/fuzz_,$(HARNESSES))

.PHONY: all
all: $(BINS)

$(OUT)/obj/module/%.o: $(ROOT)/src/%.c
	@mkdir -p $(dir $@)
	$(CC) -c $(FUZZ_CFLAGS) $(WARN) $(NGX_INCS) $(MOD_INCS) -MMD -MP \
	    -o $@ $<

$(OUT)/obj/fuzz/%.o: $(ROOT)/fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) -c $(FUZZ_CFLAGS) $(WARN) -Werror $(NGX_INCS) $(MOD_INCS) \
	    -MMD -MP -o $@ $<

$(OUT)/lib/libomnibus.a: $(MOD_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(OUT)/lib/libngx.a: $(NGX_OBJ_LIST)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# stubs.o goes in the archive too: it is linked only if the linker asks
$(OUT)/lib/libngx.a: $(OUT)/obj/fuzz/stubs.o

$(OUT)/bin/fuzz_%: $(OUT)/obj/fuzz/fuzz_%.o $(OUT)/lib/libomnibus.a \
                   $(OUT)/lib/libngx.a
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
	    -Wl,--start-group $(OUT)/lib/libomnibus.a $(OUT)/lib/libngx.a \
	    -Wl,--end-group -lyajl

-include $(MOD_OBJS:.o=.d) $(wildcard $(OUT)/obj/fuzz/*.d)
