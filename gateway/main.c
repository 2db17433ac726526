/*
 * privid-gateway: reads its configuration (flags, PRIVID_* variables, an
 * optional file) and runs the gateway in the foreground. `--routes` alone
 * prints the route table as JSON instead.
 */
#include <stdio.h>
#include <string.h>
#include "common/crash.h"
#include "common/error.h"
#include "common/log.h"
#include "gateway/gateway.h"
#include "models/models.h"

int main(int argc, char **argv)
{
    pv_gateway_config_t conf;
    char err[512] = "";
    memset(&conf, 0, sizeof(conf));
    if (argc == 2 && strcmp(argv[1], "--routes") == 0) /* the route table as JSON, for the API reference's test */
        return pv_gateway_print_routes(stdout) == 0 ? 0 : 1;
    pv_models_blas_init(argv); /* may re-execute with the right OpenBLAS kernels */
    pv_crash_handler_install("privid-gateway");
    int ret = pv_config_load(&conf, pv_gateway_options, argc, argv, err, sizeof(err));
    if (ret == 1) {
        pv_config_usage(pv_gateway_options, "privid-gateway",
                        "Serves the PrivID API over HTTP (see README.md).");
        pv_config_dispose(&conf, pv_gateway_options);
        return 0;
    }
    if (ret == 0 && pv_log_set_level(conf.log_level) != 0) {
        snprintf(err, sizeof(err), "--log-level must be debug, info, warn, error or off");
        ret = PV_EINVAL;
    }
    if (ret == 0 && conf.listen.count == 0) {
        snprintf(err, sizeof(err), "at least one --listen address is needed");
        ret = PV_EINVAL;
    }
    if (ret != 0) {
        fprintf(stderr, "privid-gateway: %s\n", err[0] ? err : pv_strerror(ret));
        pv_config_dispose(&conf, pv_gateway_options);
        return 2;
    }
    ret = pv_gateway_run(&conf);
    pv_config_dispose(&conf, pv_gateway_options);
    return ret == 0 ? 0 : 1;
}
