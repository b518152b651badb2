
/*
 * Directive parameters that need no ngx_conf_t, each on the whole input:
 * ngx_omnibus_rate_parse() (omnibus_rate_limit's "rate=" value) and
 * ngx_omnibus_breaker_parse() (omnibus_route's "breaker=" value).  The
 * value is the tail of a configuration token, so it is NUL-terminated,
 * as ngx_conf_read_token() leaves it.
 *
 * Properties: what is accepted is within the documented bounds and
 * parses back to the same values once written in canonical form.
 */


#include "fuzz_common.h"
#include <ngx_omnibus_core.h>
#include <ngx_omnibus_delivery.h>


static void
fuzz_rate(u_char *p, size_t len)
{
    u_char              buf[NGX_INT_T_LEN + 4];
    ngx_str_t           v;
    ngx_omnibus_rate_t  rate, again;

    v.data = p;
    v.len = len;

    if (ngx_omnibus_rate_parse(&v, &rate) != NGX_OK) {
        return;
    }

    fuzz_assert(rate.rate >= 1 && rate.rate <= NGX_OMNIBUS_RATE_MAX);
    fuzz_assert(rate.window == 1000 || rate.window == 60000);
    fuzz_assert(len >= 4 && p[len - 3] == 'r' && p[len - 2] == '/');

    v.data = buf;
    v.len = ngx_sprintf(buf, "%uir/%c", rate.rate,
                        rate.window == 1000 ? 's' : 'm')
            - buf;

    fuzz_assert(ngx_omnibus_rate_parse(&v, &again) == NGX_OK);
    fuzz_assert(again.rate == rate.rate && again.window == rate.window);
}


static void
fuzz_breaker(u_char *p, size_t len)
{
    u_char                      buf[3 * NGX_INT_T_LEN + 4];
    ngx_str_t                   v;
    ngx_omnibus_breaker_conf_t  conf, again;

    v.data = p;
    v.len = len;

    if (ngx_omnibus_breaker_parse(&v, &conf) != NGX_OK) {
        return;
    }

    fuzz_assert(conf.failures >= 1 && conf.successes >= 1);
    fuzz_assert(conf.timeout >= 1
                && conf.timeout <= (ngx_msec_t) NGX_MAX_INT_T_VALUE);

    v.data = buf;
    v.len = ngx_sprintf(buf, "%ui:%Mms:%ui", conf.failures, conf.timeout,
                        conf.successes)
            - buf;

    fuzz_assert(ngx_omnibus_breaker_parse(&v, &again) == NGX_OK);
    fuzz_assert(again.failures == conf.failures
                && again.timeout == conf.timeout
                && again.successes == conf.successes);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char  *p;

    fuzz_init();

    p = fuzz_dup(data, size, 1);

    fuzz_rate(p, size);
    fuzz_breaker(p, size);

    free(p);

    return 0;
}
