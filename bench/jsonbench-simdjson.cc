// bench/jsonbench-simdjson.cc: simdjson's DOM parser for bench/jsonbench.c
// (a C program): one parser, reused, as a server would keep one per
// worker.  Built by bench/jsonbench.sh when libsimdjson-dev is there.

#include <simdjson.h>


static simdjson::dom::parser  parser;


extern "C" size_t
jsonbench_simdjson_padding(void)
{
    return simdjson::SIMDJSON_PADDING;
}


extern "C" const char *
jsonbench_simdjson_name(void)
{
    return simdjson::get_active_implementation()->name().c_str();
}


// the document has SIMDJSON_PADDING readable bytes past its end: no copy

extern "C" int
jsonbench_simdjson_valid(const char *p, size_t len)
{
    return parser.parse(p, len, false).error() == simdjson::SUCCESS;
}
