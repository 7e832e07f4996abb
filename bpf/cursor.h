/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* A cursor over the packet, moved forward by each header parser (after xdp-tutorial's
 * parsing_helpers.h). Each parser checks bounds against data_end before every read and leaves the
 * cursor on the first byte after its header. */
#ifndef ADDADDR_CURSOR_H
#define ADDADDR_CURSOR_H

struct cursor {
	void *pos;
};

/* Parsers return the next protocol (>= 0), or one of these. */
enum parse_error {
	PARSE_TRUNCATED = -1,	/* a header runs past the data or contradicts its own length */
	PARSE_FRAGMENT = -2,	/* a non-first fragment: no transport header */
};

#endif
