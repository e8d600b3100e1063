/* Reading a slots dataclass's fields from C (the trace spool's encoder, the metrics rows).
 * An object's __slots__ field is a pointer at a fixed offset, which its member descriptor
 * gives; reading it is one load, against an attribute lookup through the type. */
#ifndef BASTION_SLOTS_H
#define BASTION_SLOTS_H

#include <Python.h>
#include <structmember.h>

/* The offset of slot ``name`` of ``type`` (a __slots__ member: an object reference). */
static inline int member_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset) {
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL)
        return -1;
    int ok = PyObject_TypeCheck(descr, &PyMemberDescr_Type);
    PyMemberDef *member = ok ? ((PyMemberDescrObject *)descr)->d_member : NULL;
    Py_DECREF(descr);  /* the type keeps it */
    if (member == NULL || member->type != T_OBJECT_EX || (member->flags & READONLY)) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a writable object slot", type->tp_name,
                     name);
        return -1;
    }
    *offset = member->offset;
    return 0;
}

/* The field at ``offset`` (borrowed; NULL when the slot is unset). */
static inline PyObject *slot(PyObject *obj, Py_ssize_t offset) {
    return *(PyObject **)((char *)obj + offset);
}

#endif
