build/plain/common/alloc.o: common/alloc.c common/alloc.h \
 common/exitcode.h common/log.h
common/alloc.h:
common/exitcode.h:
common/log.h:
