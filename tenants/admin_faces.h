/*
 * privid-admin faces (admin_faces.c): runs the face pipeline on image files
 * and prints one JSON line per image. Kept out of admin.c so the tenants
 * commands do not depend on the face engine's code.
 */
#ifndef PV_TENANTS_ADMIN_FACES_H
#define PV_TENANTS_ADMIN_FACES_H

#include "tenants/admin_args.h"

/* Runs `faces` for the parsed arguments; returns the process exit status:
 * 0 all images analysed, 1 an image or the networks failed (each failing
 * image still gets its own JSON line with an error). */
int pv_admin_faces(const pv_admin_args_t *a);

#endif
