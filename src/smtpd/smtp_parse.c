/* placeholder: being written */
typedef int sluice_placeholder_src_smtpd_smtp_parse_c;
