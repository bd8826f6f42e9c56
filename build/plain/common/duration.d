build/plain/common/duration.o: common/duration.c common/duration.h
common/duration.h:
