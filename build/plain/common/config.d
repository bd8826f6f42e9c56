build/plain/common/config.o: common/config.c common/alloc.h \
 common/config.h common/duration.h common/log.h
common/alloc.h:
common/config.h:
common/duration.h:
common/log.h:
