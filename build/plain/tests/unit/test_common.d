build/plain/tests/unit/test_common.o: tests/unit/test_common.c \
 common/buf.h common/log.h common/config.h common/domain.h \
 common/duration.h tests/unit/test.h
common/buf.h:
common/log.h:
common/config.h:
common/domain.h:
common/duration.h:
tests/unit/test.h:
