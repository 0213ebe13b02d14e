// Boost.JSON, header-only, compiled once for the domain tests (they build Stripe events by editing
// fixture JSON). Not used by the library itself, which only reads JSON (simdjson).
#include <boost/json/src.hpp>
