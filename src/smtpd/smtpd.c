/* placeholder: being written */
typedef int sluice_placeholder_src_smtpd_smtpd_c;
