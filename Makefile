# etrnkit - one non-recursive Makefile.
#
#   make                     build bin/etrn-agent, bin/etrn-server, bin/etrn-queue
#   make check               build and run every test (unit and end-to-end)
#   make demo                run the paired demo
#   make install             install under $(DESTDIR)$(PREFIX)
#   make SANITIZE=address,undefined check
#   make check E2E=tests/e2e/x.sh   run the unit tests and only the named e2e scripts
#   make O=build/mine BIN=build/mine/bin   build somewhere else (parallel work trees)
#
# Objects go to build/plain or build/san-<list>, so plain and sanitizer
# builds never mix; bin/ holds the binaries of the variant built last.

PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
CC         ?= cc
PKG_CONFIG ?= pkg-config
SANITIZE   ?=

PKGS := libcurl openssl libevent libevent_openssl inih

# snprintf into fixed buffers is deliberate (bounded messages); gcc cannot tell.
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wno-format-truncation
CPPFLAGS += -D_GNU_SOURCE -Icommon -Iagent -Iserver-lite
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) -MMD -MP $(shell $(PKG_CONFIG) --cflags $(PKGS))
LDLIBS   += $(shell $(PKG_CONFIG) --libs $(PKGS)) -lresolv -lcrypt

comma := ,
ifneq ($(SANITIZE),)
VARIANT  := san-$(subst $(comma),-,$(SANITIZE))
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
else
VARIANT  := plain
endif
O   ?= build/$(VARIANT)
BIN ?= bin
B := $(O)

COMMON_SRC := $(wildcard common/*.c)
AGENT_MAIN := agent/etrn_agent.c
AGENT_SRC  := $(filter-out $(AGENT_MAIN),$(wildcard agent/*.c))
SERVER_MAINS := server-lite/etrn_server.c server-lite/etrn_queue.c
SERVER_SRC := $(filter-out $(SERVER_MAINS),$(wildcard server-lite/*.c))
E2E        ?= $(sort $(wildcard tests/e2e/*.sh))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
TOOL_SRC   := $(wildcard tests/tools/*.c)

obj = $(patsubst %.c,$(B)/%.o,$(1))

LIBCOMMON := $(B)/libcommon.a
LIBAGENT  := $(B)/libagent.a
LIBSERVER := $(B)/libserver.a

PROGRAMS := $(BIN)/etrn-agent $(if $(wildcard server-lite/etrn_server.c),$(BIN)/etrn-server) \
            $(if $(wildcard server-lite/etrn_queue.c),$(BIN)/etrn-queue)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
TOOL_BINS := $(patsubst tests/tools/%.c,$(B)/tools/%,$(TOOL_SRC))

.PHONY: all check unit e2e demo deps install clean FORCE
all: $(PROGRAMS)

# bin/ follows the variant: switching SANITIZE relinks even if objects are old.
$(BIN)/.variant: FORCE
	@mkdir -p $(BIN)
	@echo $(VARIANT) | cmp -s - $@ || echo $(VARIANT) > $@

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@); rm -f $@; $(AR) rcs $@ $^
$(LIBAGENT): $(call obj,$(AGENT_SRC))
	@mkdir -p $(dir $@); rm -f $@; $(AR) rcs $@ $^
$(LIBSERVER): $(call obj,$(SERVER_SRC))
	@mkdir -p $(dir $@); rm -f $@; $(AR) rcs $@ $^

$(BIN)/etrn-agent: $(call obj,$(AGENT_MAIN)) $(LIBAGENT) $(LIBCOMMON) $(BIN)/.variant
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)
$(BIN)/etrn-server: $(call obj,server-lite/etrn_server.c) $(LIBSERVER) $(LIBCOMMON) $(BIN)/.variant
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)
$(BIN)/etrn-queue: $(call obj,server-lite/etrn_queue.c) $(LIBSERVER) $(LIBCOMMON) $(BIN)/.variant
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(LIBAGENT) $(LIBSERVER) $(LIBCOMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tools/%: $(B)/tests/tools/%.o $(LIBAGENT) $(LIBSERVER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BINS)
	@tests/run.sh --unit $(UNIT_BINS)

# check and demo install missing Debian packages first (packaging/install-deps.sh),
# then build in a sub-make that sees the new pkg-config files.
check:
	@packaging/install-deps.sh
	@$(MAKE) --no-print-directory all $(UNIT_BINS) $(TOOL_BINS)
	@BIN_DIR=$(abspath $(BIN)) TOOLS_DIR=$(abspath $(B)/tools) tests/run.sh $(UNIT_BINS) $(E2E)

e2e: all $(TOOL_BINS)
	@BIN_DIR=$(abspath $(BIN)) TOOLS_DIR=$(abspath $(B)/tools) tests/run.sh $(E2E)

demo:
	@packaging/install-deps.sh
	@$(MAKE) --no-print-directory all
	@BIN_DIR=$(abspath $(BIN)) tests/demo/run.sh

deps:
	@packaging/install-deps.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSCONFDIR)/etrnkit
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 conf/agent.ini $(DESTDIR)$(SYSCONFDIR)/etrnkit/agent.ini.example
	$(if $(wildcard conf/server-lite.ini),install -m 0644 conf/server-lite.ini $(DESTDIR)$(SYSCONFDIR)/etrnkit/server-lite.ini.example)
	install -d $(DESTDIR)$(PREFIX)/lib/etrnkit/hooks
	install -m 0755 packaging/hooks/* $(DESTDIR)$(PREFIX)/lib/etrnkit/hooks/
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0644 packaging/systemd/* $(DESTDIR)$(PREFIX)/lib/systemd/system/
	install -d $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0644 packaging/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
