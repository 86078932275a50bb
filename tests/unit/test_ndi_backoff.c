/*
 * Unit test of a failing NDI route's backoff (ndi_route_backoff_s,
 * src/plugins/ndi/ndi.h): 1 s doubling per failure in a row, capped at
 * 60 s, and still 60 s after failures enough to overflow a shift.  The
 * integration tests see the first steps; the cap is a minute of real time
 * away there.
 */
#include "check.h"
#include "../../src/plugins/ndi/ndi.h"

int main(void)
{
	static const double want[] = {1, 2, 4, 8, 16, 32, 60, 60};

	for(unsigned i = 0; i < sizeof want / sizeof want[0]; i++)
		CHECK(ndi_route_backoff_s(i) == want[i]);
	CHECK(ndi_route_backoff_s(1000) == 60);
	CHECK(ndi_route_backoff_s(~0u) == 60);
	return check_summary();
}
