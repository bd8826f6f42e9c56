build/plain/common/buf.o: common/buf.c common/alloc.h common/buf.h \
 common/log.h
common/alloc.h:
common/buf.h:
common/log.h:
