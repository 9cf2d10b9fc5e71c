/* The service's route lookups, on tt_llm_service_routes (they live here to
 * keep call.c within its size). */
#include <stddef.h>

#include "agents/llm/call.h"
#include "agents/llm/route.h"

int tt_llm_service_has_route(const tt_llm_service *s, const char *alias)
{
    const tt_routes *r = tt_llm_service_routes(s);
    return r && alias && tt_routes_find(r, alias) != NULL;
}

int tt_llm_service_configured(const tt_llm_service *s)
{
    const tt_routes *r = tt_llm_service_routes(s);
    return r && r->n_routes > 0;
}

json_t *tt_llm_service_aliases(const tt_llm_service *s)
{
    const tt_routes *r = tt_llm_service_routes(s);
    json_t *arr = json_array();
    for (size_t i = 0; r && arr && i < r->n_routes; i++)
        json_array_append_new(arr, json_string(r->routes[i].alias));
    return arr;
}
