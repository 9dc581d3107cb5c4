/* placeholder: being written */
typedef int sluice_placeholder_src_lookup_lookup_c;
