/*
 * waker.h — how the core parks a request of a transport and wakes it: the
 * boundary between the core and every transport (long polling, callback
 * polling, Server-Sent Events, WebSocket). The core never knows what is
 * behind it.
 */
#ifndef BX_WAKER_H
#define BX_WAKER_H

/* Why a held connect (or a sink) was released. */
enum bx_wake {
	BX_WAKE_NONE = 0,
	BX_WAKE_MESSAGE,    /* a message was queued */
	BX_WAKE_TIMEOUT,    /* the poll timeout passed */
	BX_WAKE_REPLACED,   /* a newer connect from the same client */
	BX_WAKE_DISCONNECT, /* the session ended (disconnect or removal) */
	BX_WAKE_SHUTDOWN,   /* the server is stopping */
	BX_WAKE_STREAM,     /* the session opened an event stream (a held
	                       connect gets its ordinary empty reply) */
	BX_WAKE_ROLLOVER,   /* a stream reached --sse-max-age or --sse-max-bytes */
};

/*
 * How a transport parks and wakes one request. suspend() is called once,
 * with the session lock held, when the core decides to hold the request;
 * resume() is called once, with the session lock held, when it is released.
 * Neither may call back into the core.
 */
typedef struct bx_waker {
	void (*suspend)(void *arg);
	void (*resume)(void *arg);
	void *arg;
} bx_waker;

#endif
