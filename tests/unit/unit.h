/*
 * unit.h - the common main() of the unit suites: runs one check suite and
 * prints the "SUMMARY passed=N failed=M" line that tests/summary reads.
 */
#ifndef PMHOST_UNIT_H
#define PMHOST_UNIT_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static inline int
unit_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int run, failed;

	srunner_run_all(sr, CK_NORMAL);
	run = srunner_ntests_run(sr);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	printf("SUMMARY passed=%d failed=%d skipped=0\n", run - failed, failed);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
