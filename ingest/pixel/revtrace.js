/* revtrace pixel placeholder: replaced by the real pixel (issue 4). */
