/*
 * params.c - the config's params, which the host hands over as compact
 * JSON text it has already validated, turned into Python objects (dict,
 * list, str, int, float, bool, None) as json.loads() would make them.
 * Parsed here rather than by the json module, whose import (with re)
 * would cost every worker's start more than the rest of its set-up.
 */
#include "pypm.h"

#include <string.h>

#define DEPTH_MAX	512	/* the host refuses deeper params anyway */

struct reader {
	const char	*start;
	const char	*p;
	const char	*end;
};

static PyObject	*read_value(struct reader *r, int depth);

/* Sets the exception for malformed input at r's position. */
static PyObject *
malformed(const struct reader *r, const char *what)
{
	PyErr_Format(PyExc_ValueError, "params: %s at offset %zd", what,
	    (Py_ssize_t)(r->p - r->start));
	return NULL;
}

static void
skip_space(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' ||
	    *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* Four hex digits after "\u"; -1 if they are not. */
static long
read_hex4(struct reader *r)
{
	long v = 0;

	if (r->end - r->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = *r->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* One escape after the backslash, as a code point; -1 if invalid. */
static long
read_escape(struct reader *r)
{
	long cp, lo;

	if (r->p >= r->end)
		return -1;
	switch (*r->p++) {
	case '"':	return '"';
	case '\\':	return '\\';
	case '/':	return '/';
	case 'b':	return '\b';
	case 'f':	return '\f';
	case 'n':	return '\n';
	case 'r':	return '\r';
	case 't':	return '\t';
	case 'u':	break;
	default:	return -1;
	}
	if ((cp = read_hex4(r)) < 0)
		return -1;
	/* A high surrogate followed by a low one is one code point; a lone
	 * surrogate stays what it is, as json.loads() keeps it. */
	if (cp >= 0xd800 && cp <= 0xdbff && r->end - r->p >= 6 &&
	    r->p[0] == '\\' && r->p[1] == 'u') {
		const char *save = r->p;

		r->p += 2;
		lo = read_hex4(r);
		if (lo >= 0xdc00 && lo <= 0xdfff)
			return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		r->p = save;
	}
	return cp;
}

/* One UTF-8 sequence (the host's text is valid UTF-8); -1 if not. */
static long
read_utf8(struct reader *r)
{
	unsigned char c = (unsigned char)*r->p++;
	int more;
	long cp;

	if (c < 0x80)
		return c;
	if ((c & 0xe0) == 0xc0) {
		cp = c & 0x1f;
		more = 1;
	} else if ((c & 0xf0) == 0xe0) {
		cp = c & 0x0f;
		more = 2;
	} else if ((c & 0xf8) == 0xf0) {
		cp = c & 0x07;
		more = 3;
	} else {
		return -1;
	}
	if (r->end - r->p < more)
		return -1;
	while (more-- > 0) {
		c = (unsigned char)*r->p++;
		if ((c & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (c & 0x3f);
	}
	return cp;
}

/* A string, the opening quote already read. */
static PyObject *
read_string(struct reader *r)
{
	Py_UCS4 *buf;
	Py_ssize_t n = 0;
	PyObject *s;
	long cp;

	/* No string has more code points than bytes. */
	buf = PyMem_New(Py_UCS4, (size_t)(r->end - r->p) + 1);
	if (buf == NULL)
		return PyErr_NoMemory();
	for (;;) {
		if (r->p >= r->end) {
			PyMem_Free(buf);
			return malformed(r, "unterminated string");
		}
		if (*r->p == '"') {
			r->p++;
			break;
		}
		if (*r->p == '\\') {
			r->p++;
			cp = read_escape(r);
		} else {
			cp = read_utf8(r);
		}
		if (cp < 0) {
			PyMem_Free(buf);
			return malformed(r, "bad string");
		}
		buf[n++] = (Py_UCS4)cp;
	}
	s = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, n);
	PyMem_Free(buf);
	return s;
}

/* A number: an int if it has no fraction or exponent, else a float. */
static PyObject *
read_number(struct reader *r)
{
	const char *start = r->p;
	int is_float = 0;
	char *text;
	PyObject *v;

	while (r->p < r->end && strchr("+-0123456789.eE", *r->p) != NULL) {
		if (*r->p == '.' || *r->p == 'e' || *r->p == 'E')
			is_float = 1;
		r->p++;
	}
	if (r->p == start)
		return malformed(r, "unexpected character");
	if ((text = PyMem_Malloc((size_t)(r->p - start) + 1)) == NULL)
		return PyErr_NoMemory();
	memcpy(text, start, (size_t)(r->p - start));
	text[r->p - start] = '\0';
	if (is_float) {
		double d = PyOS_string_to_double(text, NULL, NULL);

		v = d == -1.0 && PyErr_Occurred() ? NULL :
		    PyFloat_FromDouble(d);
	} else {
		v = PyLong_FromString(text, NULL, 10);
	}
	PyMem_Free(text);
	return v;
}

/* true, false or null. */
static PyObject *
read_word(struct reader *r)
{
	static const struct {
		const char	*word;
		PyObject	*value;
	} words[] = {
		{ "true", Py_True }, { "false", Py_False }, { "null", Py_None },
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i].word);

		if ((size_t)(r->end - r->p) >= n &&
		    memcmp(r->p, words[i].word, n) == 0) {
			r->p += n;
			return Py_NewRef(words[i].value);
		}
	}
	return read_number(r);
}

/* An array, the opening bracket already read. */
static PyObject *
read_array(struct reader *r, int depth)
{
	PyObject *list = PyList_New(0), *v;

	if (list == NULL)
		return NULL;
	skip_space(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		return list;
	}
	for (;;) {
		if ((v = read_value(r, depth + 1)) == NULL ||
		    PyList_Append(list, v) < 0)
			goto fail;
		Py_DECREF(v);
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			return list;
		}
		malformed(r, "expected ',' or ']'");
		v = NULL;
		goto fail;
	}
fail:
	Py_XDECREF(v);
	Py_DECREF(list);
	return NULL;
}

/* An object, the opening brace already read. */
static PyObject *
read_object(struct reader *r, int depth)
{
	PyObject *dict = PyDict_New(), *k = NULL, *v = NULL;

	if (dict == NULL)
		return NULL;
	skip_space(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return dict;
	}
	for (;;) {
		skip_space(r);
		if (r->p >= r->end || *r->p != '"') {
			malformed(r, "expected a key");
			goto fail;
		}
		r->p++;
		if ((k = read_string(r)) == NULL)
			goto fail;
		skip_space(r);
		if (r->p >= r->end || *r->p != ':') {
			malformed(r, "expected ':'");
			goto fail;
		}
		r->p++;
		if ((v = read_value(r, depth + 1)) == NULL ||
		    PyDict_SetItem(dict, k, v) < 0)
			goto fail;
		Py_CLEAR(k);
		Py_CLEAR(v);
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			return dict;
		}
		malformed(r, "expected ',' or '}'");
		goto fail;
	}
fail:
	Py_XDECREF(k);
	Py_XDECREF(v);
	Py_DECREF(dict);
	return NULL;
}

static PyObject *
read_value(struct reader *r, int depth)
{
	if (depth > DEPTH_MAX)
		return malformed(r, "nested too deeply");
	skip_space(r);
	if (r->p >= r->end)
		return malformed(r, "unexpected end");
	switch (*r->p) {
	case '{':
		r->p++;
		return read_object(r, depth);
	case '[':
		r->p++;
		return read_array(r, depth);
	case '"':
		r->p++;
		return read_string(r);
	default:
		return read_word(r);
	}
}

PyObject *
params_from_json(const char *json)
{
	struct reader r = { json, json, json + strlen(json) };
	PyObject *v;

	if ((v = read_value(&r, 0)) == NULL)
		return NULL;
	skip_space(&r);
	if (r.p != r.end) {
		Py_DECREF(v);
		return malformed(&r, "trailing characters");
	}
	return v;
}
