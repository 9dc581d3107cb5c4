/* placeholder: being written */
typedef int sluice_placeholder_src_lookup_table_sqlite_c;
