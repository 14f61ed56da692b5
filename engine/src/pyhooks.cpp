#include "pyhooks.hpp"

#include <langinfo.h>
#include <locale.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "output.hpp"

namespace shmrepl::engine {

namespace {

// ---- the writers -----------------------------------------------------------

// How a writer turns str into bytes. The UTF-8 modes encode in place (text.hpp);
// kCodec calls the incremental encoder of encoding/errors for every str.
enum Mode : int { kStrict, kBackslash, kSurrogateEscape, kCodec };
const char* const kUtf8Errors[] = {"strict", "backslashreplace", "surrogateescape"};

struct WriterObject {
  PyObject_HEAD
  int fd;                 // 1 or 2
  int mode;               // Mode
  int closed;             // close() was called (worker mode only)
  int own;                // the worker's own: reconfigure() and close() act, as python3's
  int line_buffering;
  int write_through;
  PyObject* encoding;     // str, as shown (and as given to reconfigure)
  PyObject* errors;       // str
  PyObject* encoder;      // kCodec: the incremental encoder, else nullptr
  PyObject* buffer;       // the binary writer behind it (.buffer)
};

// ---- str -> Segment ------------------------------------------------------

// A Segment over the text of `s` (a ready str) as `w` encodes it, without copying it
// when it is UTF-8. A str with a lone surrogate, or any str for a writer with another
// codec, is encoded by the codec instead, into bytes that *keep holds: errors=strict
// raises the same UnicodeEncodeError as CPython's TextIOWrapper.
bool segment_of(PyObject* s, const WriterObject* w, Segment* out, PyObject** keep) {
  Py_ssize_t len = PyUnicode_GET_LENGTH(s);
  const char* errors = nullptr;
  if (w->mode != kCodec) {
    if (PyUnicode_IS_ASCII(s)) {
      *out = {PyUnicode_DATA(s), static_cast<std::size_t>(len), 0};
      return true;
    }
    auto* compact = reinterpret_cast<PyCompactUnicodeObject*>(s);
    if (compact->utf8 != nullptr) {  // CPython already holds its UTF-8
      *out = {compact->utf8, static_cast<std::size_t>(compact->utf8_length), 0};
      return true;
    }
    int kind = PyUnicode_KIND(s);
    *out = {PyUnicode_DATA(s), static_cast<std::size_t>(len), static_cast<uint8_t>(kind)};
    if (kind == PyUnicode_1BYTE_KIND) return true;
    bool surrogate = false;
    if (kind == PyUnicode_2BYTE_KIND) {
      const auto* p = static_cast<const uint16_t*>(out->data);
      for (Py_ssize_t i = 0; i < len && !surrogate; ++i) surrogate = is_surrogate(p[i]);
    } else {
      const auto* p = static_cast<const uint32_t*>(out->data);
      for (Py_ssize_t i = 0; i < len && !surrogate; ++i) surrogate = is_surrogate(p[i]);
    }
    if (!surrogate) return true;
    errors = kUtf8Errors[w->mode];
  }
  PyObject* b = errors != nullptr ? PyUnicode_AsEncodedString(s, "utf-8", errors)
                                  : PyObject_CallMethod(w->encoder, "encode", "O", s);
  if (b == nullptr) return false;
  if (!PyBytes_Check(b)) {
    PyErr_Format(PyExc_TypeError, "encoder should return a bytes object, not '%.200s'", Py_TYPE(b)->tp_name);
    Py_DECREF(b);
    return false;
  }
  *keep = b;
  *out = {PyBytes_AS_STRING(b), static_cast<std::size_t>(PyBytes_GET_SIZE(b)), 0};
  return true;
}

struct BufferObject {
  PyObject_HEAD
  int fd;
};

PyTypeObject* g_writer_type = nullptr;
PyTypeObject* g_buffer_type = nullptr;

shmrepl_stream_t stream_of(int fd) { return fd == 2 ? SHMREPL_STREAM_STDERR : SHMREPL_STREAM_STDOUT; }

// The caller's stdout/stderr that stand in for fds 1/2 in isatty() and the terminal
// size (a worker of `shmrepl run` on a terminal); -1: none.
int g_terminal_fd[2] = {-1, -1};

int terminal_fd(long fd) { return fd == 1 || fd == 2 ? g_terminal_fd[fd - 1] : -1; }

PyObject* fd_isatty(int fd) {
  const int t = terminal_fd(fd);
  if (t < 0) Py_RETURN_FALSE;
  int r;
  Py_BEGIN_ALLOW_THREADS
  r = ::isatty(t);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong(r);
}

// As TextIOWrapper's methods on a closed file: true with ValueError set.
bool closed_error(const WriterObject* w) {
  if (w->closed == 0) return false;
  PyErr_SetString(PyExc_ValueError, "I/O operation on closed file.");
  return true;
}

// Bytes from another codec are not cut at UTF-8 character starts.
bool utf8_text(const WriterObject* w) { return w->mode != kCodec; }

PyObject* writer_write(PyObject* self, PyObject* s) {
  auto* w = reinterpret_cast<WriterObject*>(self);
  if (!PyUnicode_Check(s)) {
    // As CPython's argument clinic words it (None by name).
    PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.100s",
                 s == Py_None ? "None" : Py_TYPE(s)->tp_name);
    return nullptr;
  }
  if (closed_error(w) || PyUnicode_READY(s) < 0) return nullptr;
  Segment seg;
  PyObject* keep = nullptr;
  if (!segment_of(s, w, &seg, &keep)) return nullptr;
  bool ok = emit(stream_of(w->fd), &seg, 1, utf8_text(w));
  Py_XDECREF(keep);
  if (!ok) return nullptr;
  return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(s));
}

PyObject* writer_writelines(PyObject* self, PyObject* lines) {
  PyObject* it = PyObject_GetIter(lines);
  if (it == nullptr) return nullptr;
  while (PyObject* line = PyIter_Next(it)) {
    PyObject* r = writer_write(self, line);
    Py_DECREF(line);
    if (r == nullptr) {
      Py_DECREF(it);
      return nullptr;
    }
    Py_DECREF(r);
  }
  Py_DECREF(it);
  if (PyErr_Occurred()) return nullptr;
  Py_RETURN_NONE;
}

PyObject* ret_none(PyObject*, PyObject*) { Py_RETURN_NONE; }
PyObject* ret_false(PyObject*, PyObject*) { Py_RETURN_FALSE; }
PyObject* ret_true(PyObject*, PyObject*) { Py_RETURN_TRUE; }

// The mode for `encoding` (a codec's normalized name) with `errors`.
int mode_of(const char* encoding, PyObject* errors) {
  if (std::strcmp(encoding, "utf-8") != 0) return kCodec;
  for (int m = kStrict; m < kCodec; ++m)
    if (PyUnicode_CompareWithASCIIString(errors, kUtf8Errors[m]) == 0) return m;
  return kCodec;
}

// The normalized name of the text codec `encoding` (new reference); LookupError as
// TextIOWrapper raises it when there is none.
PyObject* codec_name(PyObject* encoding) {
  const char* enc = PyUnicode_AsUTF8(encoding);
  if (enc == nullptr) return nullptr;
  PyObject* codecs = PyImport_ImportModule("codecs");
  if (codecs == nullptr) return nullptr;
  PyObject* info = PyObject_CallMethod(codecs, "lookup", "O", encoding);
  Py_DECREF(codecs);
  if (info == nullptr) return nullptr;
  PyObject* is_text = PyObject_GetAttrString(info, "_is_text_encoding");
  if (is_text == nullptr) {
    PyErr_Clear();
  } else {
    int t = PyObject_IsTrue(is_text);
    Py_DECREF(is_text);
    if (t == 0)
      PyErr_Format(PyExc_LookupError, "'%s' is not a text encoding; use codecs.encode() to handle arbitrary codecs", enc);
    if (t <= 0) {
      Py_DECREF(info);
      return nullptr;
    }
  }
  PyObject* name = PyObject_GetAttrString(info, "name");
  Py_DECREF(info);
  return name;
}

// The incremental encoder for `encoding` and `errors`, set as CPython's
// TextIOWrapper sets it on a stream that is not seekable: without a BOM.
PyObject* new_encoder(PyObject* encoding, PyObject* errors) {
  PyObject* codecs = PyImport_ImportModule("codecs");
  PyObject* factory = codecs != nullptr ? PyObject_CallMethod(codecs, "getincrementalencoder", "O", encoding) : nullptr;
  Py_XDECREF(codecs);
  PyObject* e = factory != nullptr ? PyObject_CallOneArg(factory, errors) : nullptr;
  Py_XDECREF(factory);
  if (e != nullptr && PyObject_HasAttrString(e, "setstate")) {
    PyObject* r = PyObject_CallMethod(e, "setstate", "i", 0);
    if (r == nullptr) Py_CLEAR(e);
    Py_XDECREF(r);
  }
  return e;
}

// Sets what `w` encodes with (new values taken over by the writer).
bool set_codec(WriterObject* w, PyObject* encoding, PyObject* errors) {
  PyObject* name = codec_name(encoding);
  if (name == nullptr) return false;
  const char* n = PyUnicode_AsUTF8(name);
  int mode = n != nullptr ? mode_of(n, errors) : kCodec;
  PyObject* encoder = n != nullptr && mode == kCodec ? new_encoder(encoding, errors) : nullptr;
  Py_DECREF(name);
  if (n == nullptr || (mode == kCodec && encoder == nullptr)) return false;
  w->mode = mode;
  Py_XSETREF(w->encoder, encoder);
  Py_INCREF(encoding);
  Py_INCREF(errors);
  Py_SETREF(w->encoding, encoding);
  Py_SETREF(w->errors, errors);
  return true;
}

// As TextIOWrapper.reconfigure: a new encoding without errors means errors='strict';
// the writer has no buffer, so line_buffering and write_through are only recorded.
// Writers shared by the sessions of an engine (not a worker's own) check the
// arguments and stay as they are.
PyObject* writer_reconfigure(PyObject* self, PyObject* args, PyObject* kwargs) {
  auto* w = reinterpret_cast<WriterObject*>(self);
  static const char* kwlist[] = {"encoding", "errors", "newline", "line_buffering", "write_through", nullptr};
  PyObject *encoding = Py_None, *errors = Py_None, *newline = Py_None, *lb = Py_None, *wt = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOOO:reconfigure", const_cast<char**>(kwlist), &encoding,
                                   &errors, &newline, &lb, &wt))
    return nullptr;
  if ((encoding != Py_None && !PyUnicode_Check(encoding)) || (errors != Py_None && !PyUnicode_Check(errors)) ||
      (newline != Py_None && !PyUnicode_Check(newline))) {
    PyErr_BadArgument();
    return nullptr;
  }
  int line_buffering = w->line_buffering, write_through = w->write_through;
  if (lb != Py_None && (line_buffering = PyObject_IsTrue(lb)) < 0) return nullptr;
  if (wt != Py_None && (write_through = PyObject_IsTrue(wt)) < 0) return nullptr;
  if (w->own == 0) Py_RETURN_NONE;
  if (encoding != Py_None || errors != Py_None) {
    PyObject* strict = nullptr;
    if (errors == Py_None) {
      errors = strict = PyUnicode_FromString("strict");
      if (strict == nullptr) return nullptr;
    }
    bool ok = set_codec(w, encoding != Py_None ? encoding : w->encoding, errors);
    Py_XDECREF(strict);
    if (!ok) return nullptr;
  }
  w->line_buffering = line_buffering;
  w->write_through = write_through;
  Py_RETURN_NONE;
}

PyObject* writer_fileno(PyObject* self, PyObject*) {
  auto* w = reinterpret_cast<WriterObject*>(self);
  if (closed_error(w)) return nullptr;
  return PyLong_FromLong(w->fd);
}

PyObject* writer_flush(PyObject* self, PyObject*) {
  if (closed_error(reinterpret_cast<WriterObject*>(self))) return nullptr;
  Py_RETURN_NONE;
}

PyObject* writer_isatty(PyObject* self, PyObject*) {
  auto* w = reinterpret_cast<WriterObject*>(self);
  if (closed_error(w)) return nullptr;
  return fd_isatty(w->fd);
}

// In a worker the writers are the process's own, as python3's: close() closes. In
// an engine that runs sessions in-process they are shared, and close() does nothing.
PyObject* writer_close(PyObject* self, PyObject*) {
  auto* w = reinterpret_cast<WriterObject*>(self);
  if (w->own != 0) w->closed = 1;
  Py_RETURN_NONE;
}

PyObject* writer_repr(PyObject* self) {
  auto* w = reinterpret_cast<WriterObject*>(self);
  return PyUnicode_FromFormat("<shmrepl writer name='<%s>' encoding=%R>", w->fd == 2 ? "stderr" : "stdout",
                              w->encoding);
}

PyObject* writer_get_name(PyObject* self, void*) {
  return PyUnicode_FromString(reinterpret_cast<WriterObject*>(self)->fd == 2 ? "<stderr>" : "<stdout>");
}
PyObject* writer_get_encoding(PyObject* self, void*) {
  return Py_NewRef(reinterpret_cast<WriterObject*>(self)->encoding);
}
PyObject* writer_get_errors(PyObject* self, void*) {
  return Py_NewRef(reinterpret_cast<WriterObject*>(self)->errors);
}
PyObject* writer_get_closed(PyObject* self, void*) {
  return PyBool_FromLong(reinterpret_cast<WriterObject*>(self)->closed);
}
PyObject* writer_get_line_buffering(PyObject* self, void*) {
  return PyBool_FromLong(reinterpret_cast<WriterObject*>(self)->line_buffering);
}
PyObject* writer_get_write_through(PyObject* self, void*) {
  return PyBool_FromLong(reinterpret_cast<WriterObject*>(self)->write_through);
}
PyObject* get_false(PyObject*, void*) { Py_RETURN_FALSE; }
PyObject* get_none(PyObject*, void*) { Py_RETURN_NONE; }
PyObject* writer_get_mode(PyObject*, void*) { return PyUnicode_FromString("w"); }
PyObject* writer_get_buffer(PyObject* self, void*) {
  PyObject* b = reinterpret_cast<WriterObject*>(self)->buffer;
  Py_INCREF(b);
  return b;
}

void writer_dealloc(PyObject* self) {
  PyTypeObject* tp = Py_TYPE(self);
  auto* w = reinterpret_cast<WriterObject*>(self);
  Py_XDECREF(w->buffer);
  Py_XDECREF(w->encoding);
  Py_XDECREF(w->errors);
  Py_XDECREF(w->encoder);
  tp->tp_free(self);
  Py_DECREF(tp);
}

PyMethodDef g_writer_methods[] = {
    {"write", writer_write, METH_O, "Write str to the execution's ring; returns len(s)."},
    {"writelines", writer_writelines, METH_O, nullptr},
    {"flush", writer_flush, METH_NOARGS, "Nothing to do: every write is already in the ring."},
    {"close", writer_close, METH_NOARGS, nullptr},
    {"isatty", writer_isatty, METH_NOARGS, nullptr},
    {"fileno", writer_fileno, METH_NOARGS, nullptr},
    {"writable", ret_true, METH_NOARGS, nullptr},
    {"readable", ret_false, METH_NOARGS, nullptr},
    {"seekable", ret_false, METH_NOARGS, nullptr},
    {"reconfigure", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(writer_reconfigure)),
     METH_VARARGS | METH_KEYWORDS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef g_writer_getset[] = {
    {"name", writer_get_name, nullptr, nullptr, nullptr},
    {"encoding", writer_get_encoding, nullptr, nullptr, nullptr},
    {"errors", writer_get_errors, nullptr, nullptr, nullptr},
    {"closed", writer_get_closed, nullptr, nullptr, nullptr},
    {"line_buffering", writer_get_line_buffering, nullptr, nullptr, nullptr},
    {"write_through", writer_get_write_through, nullptr, nullptr, nullptr},
    {"newlines", get_none, nullptr, nullptr, nullptr},
    {"mode", writer_get_mode, nullptr, nullptr, nullptr},
    {"buffer", writer_get_buffer, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot g_writer_slots[] = {
    {Py_tp_methods, g_writer_methods},
    {Py_tp_getset, g_writer_getset},
    {Py_tp_dealloc, reinterpret_cast<void*>(writer_dealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(writer_repr)},
    {0, nullptr}};

PyType_Spec g_writer_spec = {"shmrepl.Writer", sizeof(WriterObject), 0, Py_TPFLAGS_DEFAULT,
                             g_writer_slots};

PyObject* buffer_write(PyObject* self, PyObject* data) {
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
  Segment seg{view.buf, static_cast<std::size_t>(view.len), 0};
  bool ok = emit(stream_of(reinterpret_cast<BufferObject*>(self)->fd), &seg, 1, false);
  Py_ssize_t n = view.len;
  PyBuffer_Release(&view);
  if (!ok) return nullptr;
  return PyLong_FromSsize_t(n);
}

PyObject* buffer_isatty(PyObject* self, PyObject*) {
  return fd_isatty(reinterpret_cast<BufferObject*>(self)->fd);
}

PyObject* buffer_fileno(PyObject* self, PyObject*) {
  return PyLong_FromLong(reinterpret_cast<BufferObject*>(self)->fd);
}
PyObject* buffer_get_name(PyObject* self, void*) {
  return PyUnicode_FromString(reinterpret_cast<BufferObject*>(self)->fd == 2 ? "<stderr>" : "<stdout>");
}
PyObject* buffer_get_mode(PyObject*, void*) { return PyUnicode_FromString("wb"); }

void buffer_dealloc(PyObject* self) {
  PyTypeObject* tp = Py_TYPE(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

PyMethodDef g_buffer_methods[] = {
    {"write", buffer_write, METH_O, "Write bytes to the execution's ring; returns len(b)."},
    {"flush", ret_none, METH_NOARGS, nullptr},
    {"close", ret_none, METH_NOARGS, nullptr},
    {"isatty", buffer_isatty, METH_NOARGS, nullptr},
    {"fileno", buffer_fileno, METH_NOARGS, nullptr},
    {"writable", ret_true, METH_NOARGS, nullptr},
    {"readable", ret_false, METH_NOARGS, nullptr},
    {"seekable", ret_false, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef g_buffer_getset[] = {
    {"name", buffer_get_name, nullptr, nullptr, nullptr},
    {"closed", get_false, nullptr, nullptr, nullptr},
    {"mode", buffer_get_mode, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot g_buffer_slots[] = {
    {Py_tp_methods, g_buffer_methods},
    {Py_tp_getset, g_buffer_getset},
    {Py_tp_dealloc, reinterpret_cast<void*>(buffer_dealloc)},
    {0, nullptr}};

PyType_Spec g_buffer_spec = {"shmrepl.BinaryWriter", sizeof(BufferObject), 0, Py_TPFLAGS_DEFAULT,
                             g_buffer_slots};

PyObject* new_writer(int fd) {
  auto* b = PyObject_New(BufferObject, g_buffer_type);
  if (b == nullptr) return nullptr;
  b->fd = fd;
  auto* w = PyObject_New(WriterObject, g_writer_type);
  if (w == nullptr) {
    Py_DECREF(b);
    return nullptr;
  }
  w->fd = fd;
  w->mode = fd == 2 ? kBackslash : kStrict;
  w->closed = 0;
  w->own = 0;
  w->line_buffering = 0;
  w->write_through = 0;
  w->buffer = reinterpret_cast<PyObject*>(b);
  w->encoder = nullptr;
  w->encoding = PyUnicode_FromString("utf-8");
  w->errors = PyUnicode_FromString(kUtf8Errors[w->mode]);
  if (w->encoding == nullptr || w->errors == nullptr) {
    Py_DECREF(w);
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(w);
}

// ---- print() fast path -----------------------------------------------------

PyObject* g_stdout = nullptr;  // the writers install_hooks() made
PyObject* g_stderr = nullptr;
PyObject* g_orig_print = nullptr;
PyObject* g_sys_dict = nullptr;
PyObject* g_str_stdout = nullptr;
PyObject* g_str_space = nullptr;
PyObject* g_str_newline = nullptr;

// Collects the pieces of one print() and hands them to the ring as one write,
// so a print stays whole even when other threads write while the ring is full.
// Storage is on the stack for the usual handful of arguments.
class PrintParts {
 public:
  static constexpr std::size_t kInline = 24;
  ~PrintParts() {
    for (std::size_t i = 0; i < nrefs_; ++i) Py_DECREF(refs_[i]);
    if (refs_ != refs_inline_) delete[] refs_;
    if (segs_ != segs_inline_) delete[] segs_;
  }
  // Room for n segments and n references.
  void reserve(std::size_t n) {
    if (n <= kInline) return;
    auto* s = new Segment[n];
    std::copy(segs_, segs_ + nsegs_, s);
    auto* r = new PyObject*[n];
    std::copy(refs_, refs_ + nrefs_, r);
    segs_ = s;
    refs_ = r;
  }
  void add(const Segment& s) { segs_[nsegs_++] = s; }
  void hold(PyObject* o) { refs_[nrefs_++] = o; }
  const Segment* data() const { return segs_; }
  std::size_t size() const { return nsegs_; }

 private:
  Segment segs_inline_[kInline];
  PyObject* refs_inline_[kInline];
  Segment* segs_ = segs_inline_;
  PyObject** refs_ = refs_inline_;
  std::size_t nsegs_ = 0, nrefs_ = 0;
};

bool text_option(PyObject* v, const char* what, Segment* out, const WriterObject* w, PrintParts& parts) {
  if (!PyUnicode_Check(v)) {
    PyErr_Format(PyExc_TypeError, "%s must be None or a string, not %.200s", what, Py_TYPE(v)->tp_name);
    return false;
  }
  if (PyUnicode_READY(v) < 0) return false;
  PyObject* keep = nullptr;
  if (!segment_of(v, w, out, &keep)) return false;
  if (keep != nullptr) parts.hold(keep);
  return true;
}

PyObject* fast_print(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject *sep = nullptr, *end = nullptr, *file = nullptr;
  if (kwnames != nullptr) {
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; ++i) {
      PyObject* k = PyTuple_GET_ITEM(kwnames, i);
      PyObject* v = args[nargs + i];
      if (PyUnicode_CompareWithASCIIString(k, "sep") == 0) sep = v;
      else if (PyUnicode_CompareWithASCIIString(k, "end") == 0) end = v;
      else if (PyUnicode_CompareWithASCIIString(k, "file") == 0) file = v;
      else if (PyUnicode_CompareWithASCIIString(k, "flush") != 0)
        return PyObject_Vectorcall(g_orig_print, args, static_cast<size_t>(nargs), kwnames);
    }
  }
  if (file == nullptr || file == Py_None) {
    file = PyDict_GetItemWithError(g_sys_dict, g_str_stdout);
    if (file == nullptr) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "lost sys.stdout");
      return nullptr;
    }
    if (file == Py_None) Py_RETURN_NONE;
  }
  if (Py_TYPE(file) != g_writer_type)
    return PyObject_Vectorcall(g_orig_print, args, static_cast<size_t>(nargs), kwnames);

  auto* w = reinterpret_cast<WriterObject*>(file);
  if (closed_error(w)) return nullptr;
  PrintParts parts;
  parts.reserve(static_cast<std::size_t>(nargs) * 2 + 2);
  Segment sep_seg{" ", 1, 0}, end_seg{"\n", 1, 0};
  if (sep == Py_None) sep = nullptr;
  if (end == Py_None) end = nullptr;
  if (w->mode == kCodec) {  // the defaults are bytes of UTF-8 only
    if (sep == nullptr) sep = g_str_space;
    if (end == nullptr) end = g_str_newline;
  }
  if (sep != nullptr && !text_option(sep, "sep", &sep_seg, w, parts)) return nullptr;
  if (end != nullptr && !text_option(end, "end", &end_seg, w, parts)) return nullptr;
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    if (i > 0) parts.add(sep_seg);
    PyObject* s = PyObject_Str(args[i]);
    Segment seg;
    PyObject* keep = nullptr;
    if (s == nullptr || PyUnicode_READY(s) < 0 || !segment_of(s, w, &seg, &keep)) {
      // As CPython's print: what came before the failing argument is written.
      Py_XDECREF(s);
      PyObject *t, *v, *tb;
      PyErr_Fetch(&t, &v, &tb);
      bool ok = emit(stream_of(w->fd), parts.data(), parts.size(), utf8_text(w));
      if (!ok) {
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        return nullptr;
      }
      PyErr_Restore(t, v, tb);
      return nullptr;
    }
    parts.hold(s);
    if (keep != nullptr) parts.hold(keep);
    parts.add(seg);
  }
  parts.add(end_seg);
  if (!emit(stream_of(w->fd), parts.data(), parts.size(), utf8_text(w))) return nullptr;
  Py_RETURN_NONE;
}

PyMethodDef g_print_def = {"print", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(fast_print)),
                           METH_FASTCALL | METH_KEYWORDS,
                           "print(value, ..., sep=' ', end='\\n', file=sys.stdout, flush=False)\n\n"
                           "Prints the values to a stream, or to sys.stdout by default."};

// ---- time.sleep --------------------------------------------------------------

PyObject* g_orig_sleep = nullptr;

// time.sleep on an execution's own thread waits on a condition that cancel()
// signals; CPython's sleep in a thread other than the main one would sleep on
// through a signal. Other threads and unusual arguments take the original.
PyObject* cancellable_sleep(PyObject*, PyObject* arg) {
  Execution* ex = cancellable_execution();
  if (ex == nullptr || !(PyFloat_CheckExact(arg) || PyLong_CheckExact(arg)))
    return PyObject_CallOneArg(g_orig_sleep, arg);
  double secs = PyFloat_CheckExact(arg) ? PyFloat_AS_DOUBLE(arg) : PyLong_AsDouble(arg);
  if (secs == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    return PyObject_CallOneArg(g_orig_sleep, arg);
  }
  if (!(secs > 0.0) || secs > 1e9) return PyObject_CallOneArg(g_orig_sleep, arg);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(secs));
  if (!enter_wait(ex)) return nullptr;
  Py_BEGIN_ALLOW_THREADS
  {
    std::unique_lock<std::mutex> l(ex->wake_mu);
    ex->wake_cv.wait_until(l, deadline,
                           [&] { return ex->cancel_pending.load(std::memory_order_acquire); });
  }
  Py_END_ALLOW_THREADS
  if (!leave_wait(ex)) return nullptr;
  Py_RETURN_NONE;
}

PyMethodDef g_sleep_def = {"sleep", cancellable_sleep, METH_O,
                           "sleep(seconds)\n\nDelay execution for a given number of seconds."};

// ---- os.write ------------------------------------------------------------------

PyObject* g_orig_os_write = nullptr;
FdCapturedFn g_fd_captured = nullptr;

// A write to a captured fd 1/2 from a thread with an execution becomes a record
// right away: same order as its print()s, no trip through the pipe.
PyObject* hooked_os_write(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs == 2 && g_fd_captured != nullptr && PyLong_CheckExact(args[0]) &&
      current_execution() != nullptr) {
    int overflow = 0;
    long fd = PyLong_AsLongAndOverflow(args[0], &overflow);
    if ((fd == 1 || fd == 2) && g_fd_captured(static_cast<int>(fd))) {
      Py_buffer view;
      if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) return nullptr;
      Segment seg{view.buf, static_cast<std::size_t>(view.len), 0};
      bool ok = emit(stream_of(static_cast<int>(fd)), &seg, 1, false);
      Py_ssize_t n = view.len;
      PyBuffer_Release(&view);
      if (!ok) return nullptr;
      return PyLong_FromSsize_t(n);
    }
  }
  return PyObject_Vectorcall(g_orig_os_write, args, static_cast<size_t>(nargs), nullptr);
}

PyMethodDef g_os_write_def = {
    "write", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(hooked_os_write)),
    METH_FASTCALL, "Write a bytes object to a file descriptor."};

// ---- os._exit -------------------------------------------------------------------

PyObject* g_orig_os_exit = nullptr;
pid_t g_engine_pid = 0;
bool g_real_os_exit = false;  // a worker process: os._exit ends it, as in python3

// os._exit(n) in an execution would end the engine and every session with it: it
// raises SystemExit(n) instead, so the execution finishes Exited with code n. Unlike
// the real one, `finally` blocks run and `except SystemExit` can catch it. A forked
// child (multiprocessing) and threads without an execution get the real os._exit.
PyObject* hooked_os_exit(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (!g_real_os_exit && nargs == 1 && getpid() == g_engine_pid && current_execution() != nullptr) {
    if (!PyLong_Check(args[0])) {
      PyErr_SetString(PyExc_TypeError, "'status' must be an integer");
      return nullptr;
    }
    PyErr_SetObject(PyExc_SystemExit, args[0]);
    return nullptr;
  }
  return PyObject_Vectorcall(g_orig_os_exit, args, static_cast<size_t>(nargs), nullptr);
}

PyMethodDef g_os_exit_def = {
    "_exit", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(hooked_os_exit)),
    METH_FASTCALL, "Exit the execution with the given status (SystemExit in the engine)."};

// ---- os.isatty, os.get_terminal_size ---------------------------------------------

PyObject* g_orig_os_isatty = nullptr;
PyObject* g_orig_os_get_terminal_size = nullptr;

// The fd of an int argument that stands for the caller's terminal, else -1.
int terminal_arg(PyObject* arg) {
  if (!PyLong_CheckExact(arg) || getpid() != g_engine_pid) return -1;
  int overflow = 0;
  const long fd = PyLong_AsLongAndOverflow(arg, &overflow);
  return overflow == 0 ? terminal_fd(fd) : -1;
}

// os.isatty(1|2) answers for the caller's stdout/stderr, as sys.stdout.isatty().
PyObject* hooked_os_isatty(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (kwnames == nullptr && nargs == 1 && terminal_arg(args[0]) >= 0) {
    const int t = terminal_arg(args[0]);
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = ::isatty(t);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(r);
  }
  return PyObject_Vectorcall(g_orig_os_isatty, args, static_cast<size_t>(nargs), kwnames);
}

PyMethodDef g_os_isatty_def = {
    "isatty", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(hooked_os_isatty)),
    METH_FASTCALL | METH_KEYWORDS, "Return True if the fd is connected to a terminal."};

// os.get_terminal_size(fd=1) of fds 1/2: the size of the caller's terminal now
// (TIOCGWINSZ, so it follows resizes), with python3's result type and errors.
PyObject* hooked_os_get_terminal_size(PyObject*, PyObject* const* args, Py_ssize_t nargs,
                                      PyObject* kwnames) {
  int t = -1;
  if (kwnames == nullptr && nargs <= 1 && g_engine_pid == getpid()) {
    if (nargs == 0) t = terminal_fd(1);
    else t = terminal_arg(args[0]);
  }
  if (t < 0)
    return PyObject_Vectorcall(g_orig_os_get_terminal_size, args, static_cast<size_t>(nargs),
                               kwnames);
  winsize ws{};
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = ::ioctl(t, TIOCGWINSZ, &ws);
  Py_END_ALLOW_THREADS
  if (rc != 0) return PyErr_SetFromErrno(PyExc_OSError);
  PyObject* os = PyImport_ImportModule("os");
  PyObject* type = os != nullptr ? PyObject_GetAttrString(os, "terminal_size") : nullptr;
  Py_XDECREF(os);
  if (type == nullptr) return nullptr;
  PyObject* r = PyObject_CallFunction(type, "((ii))", static_cast<int>(ws.ws_col),
                                      static_cast<int>(ws.ws_row));
  Py_DECREF(type);
  return r;
}

PyMethodDef g_os_get_terminal_size_def = {
    "get_terminal_size",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(hooked_os_get_terminal_size)),
    METH_FASTCALL | METH_KEYWORDS,
    "Return the size of the terminal window as (columns, lines)."};

// ---- input, getpass.getpass ----------------------------------------------------------

PyObject* g_orig_input = nullptr;
PyObject* g_orig_getpass = nullptr;
bool g_input_requests = false;

// The execution whose client answers input() on this thread, if any: the executor
// of a worker's session that has no stdin.
Execution* input_execution() {
  if (!g_input_requests || getpid() != g_engine_pid) return nullptr;
  return cancellable_execution();
}

// Asks the client with the prompt str(prompt_obj) (nullptr: none); returns the reply
// as str, without one trailing newline.
PyObject* ask_client(Execution* ex, PyObject* prompt_obj, bool password) {
  std::string prompt;
  if (prompt_obj != nullptr && prompt_obj != Py_None) {
    PyObject* s = PyObject_Str(prompt_obj);
    if (s == nullptr) return nullptr;
    PyObject* b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
    Py_DECREF(s);
    if (b == nullptr) return nullptr;
    prompt.assign(PyBytes_AS_STRING(b), static_cast<std::size_t>(PyBytes_GET_SIZE(b)));
    Py_DECREF(b);
  }
  std::string text;
  if (!request_input(*ex, prompt, password, &text)) return nullptr;
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "surrogateescape");
}

// input([prompt]): the client's answer when sys.stdin is still the session's own
// (a program that set its own sys.stdin reads that, as in python3).
PyObject* hooked_input(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  Execution* ex = input_execution();
  if (ex != nullptr && nargs <= 1) {
    PyObject* in = PySys_GetObject("stdin");         // borrowed
    PyObject* orig_in = PySys_GetObject("__stdin__");  // borrowed
    if (in != nullptr && in == orig_in)
      return ask_client(ex, nargs == 1 ? args[0] : nullptr, false);
  }
  return PyObject_Vectorcall(g_orig_input, args, static_cast<size_t>(nargs), nullptr);
}

PyMethodDef g_input_def = {
    "input", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(hooked_input)),
    METH_FASTCALL,
    "Read a string from standard input (here: ask the client). The trailing newline is stripped."};

// getpass.getpass(prompt='Password: ', stream=None): a password request to the client.
PyObject* hooked_getpass(PyObject*, PyObject* args, PyObject* kwargs) {
  Execution* ex = input_execution();
  if (ex == nullptr) return PyObject_Call(g_orig_getpass, args, kwargs);
  static const char* kwlist[] = {"prompt", "stream", nullptr};
  PyObject *prompt = nullptr, *stream = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:getpass", const_cast<char**>(kwlist), &prompt,
                                   &stream))
    return nullptr;
  if (prompt == nullptr) {
    PyObject* def = PyUnicode_FromString("Password: ");
    if (def == nullptr) return nullptr;
    PyObject* r = ask_client(ex, def, true);
    Py_DECREF(def);
    return r;
  }
  return ask_client(ex, prompt, true);
}

PyMethodDef g_getpass_def = {
    "getpass", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(hooked_getpass)),
    METH_VARARGS | METH_KEYWORDS,
    "Prompt for a password, with echo turned off (here: ask the client)."};

// ---- os.close ------------------------------------------------------------------

PyObject* g_orig_os_close = nullptr;

// os.close(1|2) while fds 1/2 are the capture pipes leaves them open: a freed number
// would be taken by the next descriptor the engine opens (a ring, a connection), and
// raw writes to fd 1/2 would land there. Output of the execution goes on as before.
PyObject* hooked_os_close(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (kwnames == nullptr && nargs == 1 && g_fd_captured != nullptr && PyLong_CheckExact(args[0]) && getpid() == g_engine_pid) {
    int overflow = 0;
    long fd = PyLong_AsLongAndOverflow(args[0], &overflow);
    if ((fd == 1 || fd == 2) && g_fd_captured(static_cast<int>(fd))) Py_RETURN_NONE;
  }
  return PyObject_Vectorcall(g_orig_os_close, args, static_cast<size_t>(nargs), kwnames);
}

PyMethodDef g_os_close_def = {
    "close", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(hooked_os_close)),
    METH_FASTCALL | METH_KEYWORDS, "Close a file descriptor (fds 1 and 2 stay captured in the engine)."};

// ---- thread start --------------------------------------------------------------

// The callable a new thread runs: adopts the starting thread's execution, then
// calls the real target. The execution stays the thread's until it ends.
struct ThreadStartObject {
  PyObject_HEAD
  PyObject* fn;
  std::shared_ptr<Execution> origin;
};

PyTypeObject* g_thread_start_type = nullptr;
PyObject* g_orig_start_new_thread = nullptr;

PyObject* thread_start_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  auto* t = reinterpret_cast<ThreadStartObject*>(self);
  set_current_execution(t->origin, false);
  return PyObject_Call(t->fn, args, kwargs);
}

PyObject* thread_start_repr(PyObject* self) {
  return PyObject_Repr(reinterpret_cast<ThreadStartObject*>(self)->fn);
}

void thread_start_dealloc(PyObject* self) {
  auto* t = reinterpret_cast<ThreadStartObject*>(self);
  PyTypeObject* tp = Py_TYPE(self);
  Py_XDECREF(t->fn);
  t->origin.~shared_ptr();
  tp->tp_free(self);
  Py_DECREF(tp);
}

PyType_Slot g_thread_start_slots[] = {
    {Py_tp_call, reinterpret_cast<void*>(thread_start_call)},
    {Py_tp_repr, reinterpret_cast<void*>(thread_start_repr)},
    {Py_tp_dealloc, reinterpret_cast<void*>(thread_start_dealloc)},
    {0, nullptr}};

PyType_Spec g_thread_start_spec = {"shmrepl.ThreadStart", sizeof(ThreadStartObject), 0,
                                   Py_TPFLAGS_DEFAULT, g_thread_start_slots};

PyObject* hooked_start_new_thread(PyObject*, PyObject* args) {
  std::shared_ptr<Execution> origin = current_execution_ref();
  if (origin == nullptr || !PyTuple_Check(args) || PyTuple_GET_SIZE(args) < 1)
    return PyObject_Call(g_orig_start_new_thread, args, nullptr);
  auto* t = PyObject_New(ThreadStartObject, g_thread_start_type);
  if (t == nullptr) return nullptr;
  t->fn = PyTuple_GET_ITEM(args, 0);
  Py_INCREF(t->fn);
  new (&t->origin) std::shared_ptr<Execution>(std::move(origin));
  PyObject* wrapped = PyTuple_New(PyTuple_GET_SIZE(args));
  if (wrapped == nullptr) {
    Py_DECREF(t);
    return nullptr;
  }
  PyTuple_SET_ITEM(wrapped, 0, reinterpret_cast<PyObject*>(t));
  for (Py_ssize_t i = 1; i < PyTuple_GET_SIZE(args); ++i) {
    PyObject* a = PyTuple_GET_ITEM(args, i);
    Py_INCREF(a);
    PyTuple_SET_ITEM(wrapped, i, a);
  }
  PyObject* r = PyObject_Call(g_orig_start_new_thread, wrapped, nullptr);
  Py_DECREF(wrapped);
  return r;
}

PyMethodDef g_start_new_thread_def = {"start_new_thread", hooked_start_new_thread, METH_VARARGS,
                                      "start_new_thread(function, args[, kwargs])"};

// ---- installation --------------------------------------------------------------

[[noreturn]] void fail(const char* what) {
  PyErr_Print();
  throw std::runtime_error(std::string("shmrepl engine: ") + what);
}

PyObject* must(PyObject* o, const char* what) {
  if (o == nullptr) fail(what);
  return o;
}

void set_attr(PyObject* obj, const char* name, PyObject* value, const char* what) {
  if (PyObject_SetAttrString(obj, name, value) < 0) fail(what);
}

// Replaces module.name by a C function, keeping the original in *orig.
void replace(PyObject* module, const char* name, PyMethodDef* def, PyObject** orig) {
  *orig = must(PyObject_GetAttrString(module, name), name);
  PyObject* modname = PyModule_Check(module) ? PyModule_GetNameObject(module) : nullptr;
  PyObject* fn = must(PyCFunction_NewEx(def, nullptr, modname), name);
  Py_XDECREF(modname);
  set_attr(module, name, fn, name);
  Py_DECREF(fn);
}

}  // namespace

void set_fd_captured_fn(FdCapturedFn fn) noexcept { g_fd_captured = fn; }

void set_input_requests(bool on) noexcept { g_input_requests = on; }

void set_terminal_fds(int stdout_fd, int stderr_fd) noexcept {
  g_terminal_fd[0] = stdout_fd;
  g_terminal_fd[1] = stderr_fd;
}

namespace {

const char* env_value(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' ? v : nullptr;
}

// What python3 started with this environment would use for its standard streams
// (CPython 3.11's config_init_stdio_encoding): the encoding and errors of stdout.
struct StdioConfig {
  std::string encoding;
  std::string errors;
};

StdioConfig stdio_config() {
  // The LC_CTYPE locale: LC_ALL, else LC_CTYPE, else LANG; one that does not
  // exist leaves python3 in the C locale.
  const char* name = env_value("LC_ALL");
  const bool lc_all = name != nullptr;
  if (name == nullptr) name = env_value("LC_CTYPE");
  if (name == nullptr) name = env_value("LANG");
  std::string loc = name != nullptr ? name : "C";
  std::string codeset = "ANSI_X3.4-1968";
  if (loc != "C" && loc != "POSIX") {
    locale_t l = newlocale(LC_CTYPE_MASK, loc.c_str(), static_cast<locale_t>(nullptr));
    if (l == static_cast<locale_t>(nullptr)) {
      loc = "C";
    } else {
      codeset = nl_langinfo_l(CODESET, l);
      freelocale(l);
    }
  }
  const bool c_locale = loc == "C" || loc == "POSIX";
  const char* coerce = env_value("PYTHONCOERCECLOCALE");
  if (c_locale && !lc_all && (coerce == nullptr || std::strcmp(coerce, "0") != 0)) {
    loc = "C.UTF-8";  // PEP 538: python3 coerces the C locale to C.UTF-8
    codeset = "UTF-8";
  }
  const char* utf8 = env_value("PYTHONUTF8");
  const bool utf8_mode = utf8 != nullptr ? std::strcmp(utf8, "1") == 0 : c_locale;  // PEP 540

  StdioConfig c;
  if (const char* io = env_value("PYTHONIOENCODING")) {
    const char* colon = std::strchr(io, ':');
    c.encoding.assign(io, colon != nullptr ? static_cast<std::size_t>(colon - io) : std::strlen(io));
    if (colon != nullptr) c.errors = colon + 1;
    if (!c.encoding.empty() && c.errors.empty()) c.errors = "strict";
  }
  if (c.encoding.empty()) c.encoding = utf8_mode ? "utf-8" : codeset;
  if (c.errors.empty())
    c.errors = utf8_mode || loc == "C" || loc == "POSIX" || loc == "C.UTF-8" || loc == "C.utf8" || loc == "UTF-8"
                   ? "surrogateescape"
                   : "strict";
  return c;
}

// Gives the writer `o` the codec `name` and errors.
void configure_writer(PyObject* o, PyObject* name, const char* errors) {
  auto* w = reinterpret_cast<WriterObject*>(o);
  PyObject* err = PyUnicode_DecodeFSDefault(errors);
  if (err != nullptr) set_codec(w, name, err);
  Py_XDECREF(err);
  w->own = 1;
  w->write_through = 1;  // as python3 -u
  PyErr_Clear();
}

}  // namespace

void configure_worker_streams() {
  if (g_stdout == nullptr || g_stderr == nullptr) return;
  const StdioConfig c = stdio_config();
  // As python3 shows it: the codec's normalized name. An unknown one (python3 would
  // not start) leaves UTF-8.
  PyObject* enc = PyUnicode_DecodeFSDefault(c.encoding.c_str());
  PyObject* name = enc != nullptr ? codec_name(enc) : nullptr;
  Py_XDECREF(enc);
  if (name == nullptr) {
    PyErr_Clear();
    name = PyUnicode_FromString("utf-8");
    if (name == nullptr) {
      PyErr_Clear();
      return;
    }
  }
  configure_writer(g_stdout, name, c.errors.c_str());
  configure_writer(g_stderr, name, "backslashreplace");
  // sys.stdin is CPython's own, made with the engine's environment.
  PyObject* in = PySys_GetObject("stdin");  // borrowed
  PyObject* m = in != nullptr && in != Py_None ? PyObject_GetAttrString(in, "reconfigure") : nullptr;
  PyObject* kw = m != nullptr ? Py_BuildValue("{s:O,s:s}", "encoding", name, "errors", c.errors.c_str()) : nullptr;
  PyObject* args = kw != nullptr ? PyTuple_New(0) : nullptr;
  PyObject* r = args != nullptr ? PyObject_Call(m, args, kw) : nullptr;
  Py_XDECREF(r);
  Py_XDECREF(args);
  Py_XDECREF(kw);
  Py_XDECREF(m);
  Py_DECREF(name);
  PyErr_Clear();
}

void reset_engine_pid() noexcept {
  g_engine_pid = getpid();
  g_real_os_exit = true;
}

void install_hooks() {
  g_writer_type = reinterpret_cast<PyTypeObject*>(must(PyType_FromSpec(&g_writer_spec), "writer type"));
  g_buffer_type = reinterpret_cast<PyTypeObject*>(must(PyType_FromSpec(&g_buffer_spec), "buffer type"));
  g_thread_start_type =
      reinterpret_cast<PyTypeObject*>(must(PyType_FromSpec(&g_thread_start_spec), "thread type"));

  PyObject* sys = must(PyImport_ImportModule("sys"), "import sys");
  g_sys_dict = PyModule_GetDict(sys);
  Py_INCREF(g_sys_dict);
  g_str_stdout = must(PyUnicode_InternFromString("stdout"), "intern");
  g_str_space = must(PyUnicode_InternFromString(" "), "intern");
  g_str_newline = must(PyUnicode_InternFromString("\n"), "intern");
  PyObject* out = must(new_writer(1), "stdout writer");
  PyObject* err = must(new_writer(2), "stderr writer");
  g_stdout = Py_NewRef(out);
  g_stderr = Py_NewRef(err);
  set_attr(sys, "stdout", out, "sys.stdout");
  set_attr(sys, "__stdout__", out, "sys.__stdout__");
  set_attr(sys, "stderr", err, "sys.stderr");
  set_attr(sys, "__stderr__", err, "sys.__stderr__");
  Py_DECREF(out);
  Py_DECREF(err);
  Py_DECREF(sys);

  PyObject* builtins = must(PyImport_ImportModule("builtins"), "import builtins");
  replace(builtins, "print", &g_print_def, &g_orig_print);
  replace(builtins, "input", &g_input_def, &g_orig_input);
  Py_DECREF(builtins);

  PyObject* time = must(PyImport_ImportModule("time"), "import time");
  replace(time, "sleep", &g_sleep_def, &g_orig_sleep);
  Py_DECREF(time);

  // getpass.getpass asks the client too (see input_execution); without getpass
  // (no termios) there is nothing to replace.
  if (PyObject* getpass = PyImport_ImportModule("getpass")) {
    replace(getpass, "getpass", &g_getpass_def, &g_orig_getpass);
    Py_DECREF(getpass);
  } else {
    PyErr_Clear();
  }

  PyObject* os = must(PyImport_ImportModule("os"), "import os");
  replace(os, "write", &g_os_write_def, &g_orig_os_write);
  g_engine_pid = getpid();
  replace(os, "_exit", &g_os_exit_def, &g_orig_os_exit);
  replace(os, "close", &g_os_close_def, &g_orig_os_close);
  replace(os, "isatty", &g_os_isatty_def, &g_orig_os_isatty);
  replace(os, "get_terminal_size", &g_os_get_terminal_size_def, &g_orig_os_get_terminal_size);
  Py_DECREF(os);

  // threading copies _thread.start_new_thread when it is imported: patch both.
  PyObject* thread = must(PyImport_ImportModule("_thread"), "import _thread");
  replace(thread, "start_new_thread", &g_start_new_thread_def, &g_orig_start_new_thread);
  PyObject* patched = must(PyObject_GetAttrString(thread, "start_new_thread"), "start_new_thread");
  set_attr(thread, "start_new", patched, "_thread.start_new");
  PyObject* threading = must(PyImport_ImportModule("threading"), "import threading");
  set_attr(threading, "_start_new_thread", patched, "threading._start_new_thread");
  Py_DECREF(threading);
  Py_DECREF(patched);
  Py_DECREF(thread);
}

}  // namespace shmrepl::engine
