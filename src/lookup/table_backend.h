/*
 * table_backend - what a backend of table.h provides (table.c dispatches).
 *
 * Each backend defines its own struct table_be (its handle; table.c never
 * looks inside) and one const struct table_ops with every function of
 * table.h, same meaning. table.c picks the backend whose prefix starts the
 * DSN.
 */
#ifndef SLUICE_TABLE_BACKEND_H
#define SLUICE_TABLE_BACKEND_H

#include <stddef.h>

#include "table.h"

struct table_be;

struct table_ops {
	const char	*prefix;	/* of the DSN: "sqlite:" */
	struct table_be	*(*open)(const char *dsn, char *err, size_t errlen);
	void		 (*close)(struct table_be *);
	int		 (*init_schema)(struct table_be *, char *, size_t);
	int		 (*schema_version)(struct table_be *);
	enum table_res	 (*domain_local)(struct table_be *, const char *);
	enum table_res	 (*account_exists)(struct table_be *, const char *,
			    const char *);
	enum table_res	 (*account_password)(struct table_be *, const char *,
			    const char *, char *, size_t);
	int		 (*domain_add)(struct table_be *, const char *, char *,
			    size_t);
	int		 (*domain_del)(struct table_be *, const char *, char *,
			    size_t);
	int		 (*domain_list)(struct table_be *, table_row_cb, void *,
			    char *, size_t);
	int		 (*domain_accounts)(struct table_be *, const char *,
			    unsigned long *, char *, size_t);
	int		 (*account_add)(struct table_be *, const char *,
			    const char *, const char *, char *, size_t);
	int		 (*account_del)(struct table_be *, const char *,
			    const char *, char *, size_t);
	int		 (*account_passwd)(struct table_be *, const char *,
			    const char *, const char *, char *, size_t);
	int		 (*account_list)(struct table_be *, const char *,
			    table_row_cb, void *, char *, size_t);
	enum table_res	 (*alias_get)(struct table_be *, const char *,
			    table_row_cb, void *);
	enum table_res	 (*alias_wildcards)(struct table_be *, const char *,
			    table_row_cb, void *);
	int		 (*alias_add)(struct table_be *, const char *,
			    const char *, const char *, char *, size_t);
	int		 (*alias_del)(struct table_be *, const char *,
			    const char *, char *, size_t);
	int		 (*alias_list)(struct table_be *, const char *,
			    table_row_cb, void *, char *, size_t);
	/* schema 3 */
	int		 (*alias_list_target)(struct table_be *, const char *,
			    table_row_cb, void *, char *, size_t);
	enum table_res	 (*account_get)(struct table_be *, const char *,
			    const char *, struct table_account *);
	int		 (*account_set)(struct table_be *, const char *,
			    const char *, const char *, const char *, char *,
			    size_t);
	int		 (*reset_put)(struct table_be *, const char *,
			    const char *, const char *, long long, char *,
			    size_t);
	enum table_res	 (*reset_take)(struct table_be *, const char *,
			    const char *, const char *, long long);
	/* schema 4: the masked relay */
	enum table_res	 (*mask_service_get)(struct table_be *, const char *,
			    struct table_mask_service *);
	int		 (*mask_service_add)(struct table_be *, const char *,
			    const char *, const char *, long long, char *,
			    size_t);
	int		 (*mask_service_set)(struct table_be *, const char *,
			    int, char *, size_t);
	int		 (*mask_service_del)(struct table_be *, const char *,
			    char *, size_t);
	int		 (*mask_service_list)(struct table_be *, table_row_cb,
			    void *, char *, size_t);
	enum table_res	 (*mask_pair_get)(struct table_be *, const char *,
			    struct table_mask_pair *);
	enum table_res	 (*mask_pair_find)(struct table_be *, const char *,
			    const char *, struct table_mask_pair *);
	enum table_res	 (*mask_pair_add)(struct table_be *, const char *,
			    const char *, const char *,
			    struct table_mask_pair *);
	int		 (*mask_pair_set)(struct table_be *, const char *, int,
			    char *, size_t);
	int		 (*mask_pair_list)(struct table_be *, const char *,
			    table_row_cb, void *, char *, size_t);
	int		 (*mask_event)(struct table_be *, const char *,
			    const char *, const char *, long long);
	int		 (*mask_bounce)(struct table_be *, const char *,
			    const char *, unsigned);
	int		 (*mask_ok)(struct table_be *, const char *,
			    const char *);
	int		 (*mask_events)(struct table_be *, const char *,
			    long long, table_row_cb, void *, char *, size_t);
};

extern const struct table_ops	table_sqlite_ops;
extern const struct table_ops	table_pgsql_ops;
extern const struct table_ops	table_files_ops;

#endif
