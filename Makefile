# etrnkit - one non-recursive Makefile.
#
#   make                     build bin/etrn-agent, bin/etrn-server, bin/etrn-queue
#   make check               build and run every test (unit and end-to-end)
#   make demo                run the paired demo
#   make install             install under $(DESTDIR)$(PREFIX) what the packages install
#   make uninstall           remove it again (configuration in /etc/etrnkit stays)
#   make deb                 Debian packages etrnkit-agent and etrnkit-server into build/deb/
#   make SANITIZE=address,undefined check
#   make check E2E=tests/e2e/x.sh   run the unit tests and only the named e2e scripts
#   make O=build/mine BIN=build/mine/bin   build somewhere else (parallel work trees)
#   make fuzz                build the libFuzzer harnesses of tests/fuzz/ with clang
#                            (-fsanitize=fuzzer,address,undefined; objects in build/fuzz)
#                            and run each once over its seed corpus
#   make fuzz FUZZ_SECONDS=N fuzz each harness for N seconds; fails on a crash, leak or timeout
#                            (logs, grown corpora and crash inputs in build/fuzz/run/)
#
# Objects go to build/plain or build/san-<list>, so plain and sanitizer
# builds never mix; bin/ holds the binaries of the variant built last.

PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/etrnkit
UNITDIR    ?= $(PREFIX)/lib/systemd/system
CC         ?= cc
PKG_CONFIG ?= pkg-config
SANITIZE   ?=

# The release: VERSION holds it; --version prints it and the packages carry it.
VERSION := $(shell cat VERSION)
ifeq ($(shell printf '%s' '$(VERSION)' | grep -Ex '[0-9]+(\.[0-9]+)*([~+][a-z0-9.]+)?'),)
$(error VERSION file: "$(VERSION)" is not a version such as 1.2.3)
endif

# libcurl is the agent's ETRN client only; etrn-server and etrn-queue do not link it
SERVER_PKGS := openssl libevent libevent_openssl inih
PKGS := libcurl $(SERVER_PKGS)

# snprintf into fixed buffers is deliberate (bounded messages); gcc cannot tell.
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wno-format-truncation
# the fuzz build is clang's: it knows no -Wno-format-truncation, and its
# -Wformat-nonliteral (in -Wformat=2) flags the vprintf-style helpers gcc accepts
ifneq ($(findstring fuzzer,$(SANITIZE)),)
WARN += -Wno-unknown-warning-option -Wno-format-nonliteral
endif
CPPFLAGS += -D_GNU_SOURCE -Icommon -Iagent -Iserver-lite
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) -MMD -MP $(shell $(PKG_CONFIG) --cflags $(PKGS))
LDLIBS   += $(shell $(PKG_CONFIG) --libs $(PKGS)) -lresolv -lcrypt
SERVER_LDLIBS := $(shell $(PKG_CONFIG) --libs $(SERVER_PKGS)) -lresolv -lcrypt -lpthread

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
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_LIB_SRC := $(filter-out $(FUZZ_SRC),$(wildcard tests/fuzz/*.c))
FUZZ_CC    ?= clang
FUZZ_SECONDS ?=

obj = $(patsubst %.c,$(B)/%.o,$(1))

LIBCOMMON := $(B)/libcommon.a
LIBAGENT  := $(B)/libagent.a
LIBSERVER := $(B)/libserver.a

PROGRAMS := $(BIN)/etrn-agent $(if $(wildcard server-lite/etrn_server.c),$(BIN)/etrn-server) \
            $(if $(wildcard server-lite/etrn_queue.c),$(BIN)/etrn-queue)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
TOOL_BINS := $(patsubst tests/tools/%.c,$(B)/tools/%,$(TOOL_SRC))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(B)/fuzzers/%,$(FUZZ_SRC))

.PHONY: all check unit e2e demo deps install uninstall deb clean fuzz fuzz-bins FORCE
all: $(PROGRAMS)

# bin/ follows the variant: switching SANITIZE relinks even if objects are old.
$(BIN)/.variant: FORCE
	@mkdir -p $(BIN)
	@echo $(VARIANT) | cmp -s - $@ || echo $(VARIANT) > $@

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/common/version.o: CPPFLAGS += -DETRNKIT_VERSION='"$(VERSION)"'
$(B)/common/version.o: VERSION

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@); rm -f $@; $(AR) rcs $@ $^
$(LIBAGENT): $(call obj,$(AGENT_SRC))
	@mkdir -p $(dir $@); rm -f $@; $(AR) rcs $@ $^
$(LIBSERVER): $(call obj,$(SERVER_SRC))
	@mkdir -p $(dir $@); rm -f $@; $(AR) rcs $@ $^

$(BIN)/etrn-agent: $(call obj,$(AGENT_MAIN)) $(LIBAGENT) $(LIBCOMMON) $(BIN)/.variant
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)
$(BIN)/etrn-server: $(call obj,server-lite/etrn_server.c) $(LIBSERVER) $(LIBCOMMON) $(BIN)/.variant
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(SERVER_LDLIBS)
$(BIN)/etrn-queue: $(call obj,server-lite/etrn_queue.c) $(LIBSERVER) $(LIBCOMMON) $(BIN)/.variant
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(SERVER_LDLIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(LIBAGENT) $(LIBSERVER) $(LIBCOMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tools/%: $(B)/tests/tools/%.o $(LIBAGENT) $(LIBSERVER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer harnesses: only built by "make fuzz" (a sub-make with clang and
# SANITIZE=fuzzer-no-link,address,undefined); linked with -fsanitize=fuzzer.
$(B)/fuzzers/%: $(B)/tests/fuzz/%.o $(call obj,$(FUZZ_LIB_SRC)) $(LIBAGENT) $(LIBSERVER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-bins: $(FUZZ_BINS)
.SECONDARY: $(call obj,$(FUZZ_SRC) $(FUZZ_LIB_SRC))

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

fuzz:
	@packaging/install-deps.sh
	@CFLAGS='-O1 -g' $(MAKE) --no-print-directory CC=$(FUZZ_CC) \
	    SANITIZE=fuzzer-no-link,address,undefined O=build/fuzz fuzz-bins
	@tests/fuzz/run.sh build/fuzz/fuzzers build/fuzz/run $(FUZZ_SECONDS)

deps:
	@packaging/install-deps.sh

# What make install puts where: the same files, paths and modes as the Debian
# packages (packaging/debian/*.install list them). A configuration file that
# exists already is never overwritten. Hooks go where their callers look.
HOOK_DESTS := ppp-ip-up:ppp/ip-up.d/etrnkit \
              nm-dispatcher:NetworkManager/dispatcher.d/90-etrnkit \
              networkd-dispatcher:networkd-dispatcher/routable.d/50-etrnkit \
              ifupdown-if-up:network/if-up.d/etrnkit
MAN_SUBST := sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
                 -e 's|@DOCDIR@|$(DOCDIR)|g' -e 's|@UNITDIR@|$(UNITDIR)|g' -e 's|@VERSION@|$(VERSION)|g'
MANPAGES  := $(notdir $(wildcard packaging/man/*.8))

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/etrnkit $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/cron.d \
	    $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	for f in agent.ini server-lite.ini; do \
	    [ -e $(DESTDIR)$(SYSCONFDIR)/etrnkit/$$f ] || install -m 0640 conf/$$f $(DESTDIR)$(SYSCONFDIR)/etrnkit/$$f || exit 1; \
	done
	for h in $(HOOK_DESTS); do \
	    install -D -m 0755 packaging/hooks/$${h%%:*} $(DESTDIR)$(SYSCONFDIR)/$${h#*:} || exit 1; \
	done
	install -m 0644 packaging/cron/etrnkit $(DESTDIR)$(SYSCONFDIR)/cron.d/etrnkit
	install -m 0644 packaging/logrotate/etrnkit-server $(DESTDIR)$(SYSCONFDIR)/logrotate.d/etrnkit-server
	install -m 0644 packaging/systemd/* $(DESTDIR)$(UNITDIR)/
	for m in $(MANPAGES); do \
	    $(MAN_SUBST) packaging/man/$$m > $(DESTDIR)$(MANDIR)/man8/$$m.tmp && \
	    chmod 0644 $(DESTDIR)$(MANDIR)/man8/$$m.tmp && \
	    mv -f $(DESTDIR)$(MANDIR)/man8/$$m.tmp $(DESTDIR)$(MANDIR)/man8/$$m || exit 1; \
	done
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 packaging/README.md $(DESTDIR)$(DOCDIR)/README.packaging.md

# uninstall removes what install put there, except the configuration files
# in $(SYSCONFDIR)/etrnkit (the administrator's), the spool and the user.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,etrn-agent etrn-server etrn-queue)
	for h in $(HOOK_DESTS); do rm -f $(DESTDIR)$(SYSCONFDIR)/$${h#*:}; done
	rm -f $(DESTDIR)$(SYSCONFDIR)/cron.d/etrnkit $(DESTDIR)$(SYSCONFDIR)/logrotate.d/etrnkit-server
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(wildcard packaging/systemd/*)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(MANPAGES))
	rm -f $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/README.packaging.md
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null
	@echo "uninstall: kept $(DESTDIR)$(SYSCONFDIR)/etrnkit (configuration); remove it by hand if unwanted"

# deb: dpkg-buildpackage in a copy of the tree (build/deb/etrnkit-VERSION) with
# packaging/debian as debian/; the .deb files land in build/deb/. The
# version comes from VERSION; packaging/debian/changelog must name it.
DEB_SRC := build/deb/etrnkit-$(VERSION)
deb:
	@v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version) && \
	    [ "$$v" = "$(VERSION)" ] || { echo "make deb: packaging/debian/changelog says $$v, VERSION says $(VERSION)" >&2; exit 1; }
	rm -rf build/deb
	mkdir -p $(DEB_SRC)
	tar -c --exclude=./build --exclude=./bin --exclude=./.git --exclude=./packaging/debian . | \
	    tar -x -C $(DEB_SRC)
	cp -r packaging/debian $(DEB_SRC)/debian
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b
	@ls build/deb/*.deb

clean:
	rm -rf build bin

-include $(shell find build -path build/deb -prune -o -name '*.d' -type f -print 2>/dev/null)
