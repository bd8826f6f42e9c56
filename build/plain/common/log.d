build/plain/common/log.o: common/log.c common/exitcode.h common/log.h
common/exitcode.h:
common/log.h:
