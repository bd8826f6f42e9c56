build/plain/common/domain.o: common/domain.c common/domain.h
common/domain.h:
