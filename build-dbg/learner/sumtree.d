build-dbg/learner/sumtree.o: learner/sumtree.c learner/sumtree.h \
 lib/common.h
learner/sumtree.h:
lib/common.h:
