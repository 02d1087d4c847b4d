#!/usr/bin/env python3
"""Writes corrected copies of websocketpp 0.8.2 headers into the build directory.

    fix_websocketpp.py [--cxx20] [--fast-frames] <websocketpp include root> <output root>

meson.build runs this at configure time and puts <output root> ahead of the system headers on
the include path of the one library that includes websocketpp (lib/transport), so no
third-party source is committed. Two independent fix-ups, plus three always applied: race fixes
(impl/connection_impl.hpp: get_buffered_amount() takes the write lock; common/network.hpp:
_htonll() keeps no static), a record of who closed (connection.hpp: iii_closed_first()) and a
drain signal (connection.hpp: set_iii_drain_handler(),
called when the send queue shrinks and when a socket write completes, so that a writer bounding
the queue waits for it instead of polling):

--cxx20        websocketpp declares constructors and destructors with template-ids
               (`basic<concurrency,names>(...)`, `~endpoint<connection,config>()`), which C++20
               forbids (CWG 2237; GCC 12 rejects them). The copies of logger/basic.hpp,
               endpoint.hpp and roles/*_endpoint.hpp drop the template arguments from those
               declarators only.

--fast-frames  websocketpp masks payloads byte by byte and validates text payloads byte by
               byte, when reading (hybi13::process_payload_bytes) and again when sending
               (prepare_data_frame): a third of the CPU time of every process of ours. The
               copies of frame.hpp and processors/hybi13.hpp call lib/wspp/iii_wspp_ops.hpp
               instead: word-wise masking, and one SIMD UTF-8 check per text message (when the
               whole message is in, so UTF-8 split across frames passes; an invalid message
               still fails with processor::error::invalid_utf8, which websocketpp turns into
               close 1007). prepare_data_frame hands the payload of the message it prepares
               over to the frame it writes instead of copying it (masked in place by a client):
               connection::send() made that message for this one send, so an unprepared message
               passed to send(message_ptr) is consumed (ours never is; the transport sends bytes).
               The copy of connection.hpp binds its read and write completion
               handlers so that websocketpp's copies of them do not allocate and queues sends
               in a ring that keeps its slots (lib/wspp/iii_wspp_queue.hpp), and the copy of
               message_buffer/alloc.hpp recycles messages (lib/wspp/iii_wspp_pool.hpp). Each change
               replaces one exact, unique piece of the original text:
               if the installed headers differ (another version, a distribution patch), the
               script names the file and the piece it could not find and exits with status 2,
               and meson stops with that message.

Files under <output root>/websocketpp that the current fix-ups do not produce are removed, so a
reconfigure never leaves a stale copy on the include path. Prints a digest of the copies'
contents on stdout: meson passes it as a define, so a change to the copies changes the compile
command and rebuilds what includes them (a new copy shadows a header that did not change, which
the compiler's dependency files alone would not notice).
"""
import argparse
import hashlib
import pathlib
import re
import sys

CXX20_HEADERS = ["logger/basic.hpp", "endpoint.hpp", "roles/server_endpoint.hpp",
                 "roles/client_endpoint.hpp"]
# A declarator at the start of a line: optional '~', the class name, its template arguments,
# then '('. Return types such as `basic<...> & operator=` do not match because '(' must follow.
DECLARATOR = re.compile(r"^(\s*)(~?)(basic|endpoint|server|client)<[^()]*?>\(", re.M)

# (file, original text, replacement). Originals are verbatim websocketpp 0.8.2.
# Always applied: get_buffered_amount() reads the send-queue size without the write lock that
# guards it (its own lock is commented out), a data race when a channel writer's
# buffered_amount() is read from another thread than the connection's (TSan).
RACE_PATCHES = [
    ("impl/connection_impl.hpp",
     """\
size_t connection<config>::get_buffered_amount() const {
    //scoped_lock_type lock(m_connection_state_lock);
    return m_send_buffer_size;
}
""",
     """\
size_t connection<config>::get_buffered_amount() const {
    // iii: the size is written under m_write_lock (write_push, write_pop)
    scoped_lock_type lock(const_cast<mutex_type &>(m_write_lock));
    return m_send_buffer_size;
}
"""),
    # _htonll() finds the byte order on first use and caches it in an unguarded static: two
    # threads framing their first payload over 125 bytes race on it (TSan). Asking the compiler
    # needs no state.
    ("common/network.hpp",
     """\
inline uint64_t _htonll(uint64_t src) {
    static int typ = TYP_INIT;
    unsigned char c;
    union {
        uint64_t ull;
        unsigned char c[8];
    } x;
    if (typ == TYP_INIT) {
        x.ull = 0x01;
        typ = (x.c[7] == 0x01ULL) ? TYP_BIGE : TYP_SMLE;
    }
    if (typ == TYP_BIGE)
        return src;
    x.ull = src;
    c = x.c[0]; x.c[0] = x.c[7]; x.c[7] = c;
    c = x.c[1]; x.c[1] = x.c[6]; x.c[6] = c;
    c = x.c[2]; x.c[2] = x.c[5]; x.c[5] = c;
    c = x.c[3]; x.c[3] = x.c[4]; x.c[4] = c;
    return x.ull;
}
""",
     """\
inline uint64_t _htonll(uint64_t src) {
    // iii: no static (the original cached the byte order in one, a data race)
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return src;
#else
    return __builtin_bswap64(src);
#endif
}
"""),
]

# Always applied: websocketpp does not tell whether it sent the first close frame (its own close()
# or a protocol error it found in the peer's frames: 1007 invalid UTF-8, 1009 too big, 1002) or
# acknowledged the peer's. The transport needs that to say who closed the connection.
CLOSE_PATCHES = [
    ("connection.hpp",
     """\
    close::status::value get_local_close_code() const {
        return m_local_close_code;
    }
""",
     """\
    close::status::value get_local_close_code() const {
        return m_local_close_code;
    }

    /// iii: whether this endpoint sent the first close frame (not an acknowledgement).
    bool iii_closed_first() const {
        return m_iii_closed_first;
    }
"""),
    ("connection.hpp",
     """\
    bool m_was_clean;
};
""",
     """\
    bool m_was_clean;
    bool m_iii_closed_first = false; // iii: set by send_close_frame
};
"""),
    ("impl/connection_impl.hpp",
     """\
    m_alog->write(log::alevel::devel,"send_close_frame");
""",
     """\
    m_alog->write(log::alevel::devel,"send_close_frame");
    if (!ack) m_iii_closed_first = true; // iii
"""),
]

# Always applied: a drain signal. websocketpp tells nobody when its send queue shrinks, so a
# writer bounding that queue (ChannelWriter) could only poll get_buffered_amount(). The copy of
# connection.hpp gains set_iii_drain_handler(); the handler runs on the connection's strand
# each time write_frame() takes queued messages for a socket write (get_buffered_amount()
# dropped) and each time a socket write completed.
DRAIN_PATCHES = [
    ("connection.hpp",
     """\
    void set_close_handler(close_handler h) {
        m_close_handler = h;
    }
""",
     """\
    void set_close_handler(close_handler h) {
        m_close_handler = h;
    }

    /// iii: called on the connection's strand when queued messages were taken for a socket
    /// write (get_buffered_amount() dropped) and when a socket write completed. Set it before
    /// the connection starts; it must not block.
    void set_iii_drain_handler(lib::function<void()> h) {
        m_iii_drain_handler = h;
    }
"""),
    ("connection.hpp",
     "    write_frame_handler     m_write_frame_handler;\n",
     "    write_frame_handler     m_write_frame_handler;\n"
     "    lib::function<void()>   m_iii_drain_handler; // iii: see set_iii_drain_handler\n"),
    ("impl/connection_impl.hpp",
     """\
            // successfully sent or there is some error
            m_write_flag = true;
        }
    }
""",
     """\
            // successfully sent or there is some error
            m_write_flag = true;
        }
    }

    // iii: the queue shrank (outside the write lock: the handler may read the amount)
    if (m_iii_drain_handler) {
        m_iii_drain_handler();
    }
"""),
    ("impl/connection_impl.hpp",
     """\
    if (needs_writing) {
        transport_con_type::dispatch(lib::bind(
            &type::write_frame,
            type::get_shared()
        ));
    }
}

template <typename config>
std::vector<int> const & connection<config>::get_supported_versions() const
""",
     """\
    if (needs_writing) {
        transport_con_type::dispatch(lib::bind(
            &type::write_frame,
            type::get_shared()
        ));
    }

    // iii: a socket write completed
    if (m_iii_drain_handler) {
        m_iii_drain_handler();
    }
}

template <typename config>
std::vector<int> const & connection<config>::get_supported_versions() const
"""),
]

FAST_FRAME_PATCHES = [
    ("frame.hpp",
     "#include <websocketpp/utilities.hpp>\n",
     "#include <websocketpp/utilities.hpp>\n"
     "\n"
     "#include <iii_wspp_ops.hpp> // iii: word-wise masking\n"),
    ("frame.hpp",
     """\
inline size_t byte_mask_circ(uint8_t * input, uint8_t * output, size_t length,
    size_t prepared_key)
{
    uint32_converter key;
    key.i = prepared_key;

    for (size_t i = 0; i < length; ++i) {
        output[i] = input[i] ^ key.c[i % 4];
    }

    return circshift_prepared_key(prepared_key,length % 4);
}
""",
     """\
inline size_t byte_mask_circ(uint8_t * input, uint8_t * output, size_t length,
    size_t prepared_key)
{
    // iii: word-wise. The prepared key's first four bytes in memory are the key already
    // rotated to this chunk's offset, on either byte order.
    uint8_t key[sizeof(size_t)];
    std::memcpy(key, &prepared_key, sizeof(size_t));
    ::iii::detail::wspp::mask(input, output, length, key);

    return circshift_prepared_key(prepared_key,length % 4);
}
"""),
    ("processors/hybi13.hpp",
     "#include <websocketpp/utf8_validator.hpp>\n",
     "#include <websocketpp/utf8_validator.hpp>\n"
     "#include <iii_wspp_ops.hpp> // iii: word-wise masking, one UTF-8 check per message\n"),
    # Reading: no per-chunk UTF-8 decode (finalize_message checks the whole message once).
    ("processors/hybi13.hpp",
     """\
        std::string & out = m_current_msg->msg_ptr->get_raw_payload();
        size_t offset = out.size();
""",
     """\
        std::string & out = m_current_msg->msg_ptr->get_raw_payload();
"""),
    ("processors/hybi13.hpp",
     """\
        // validate unmasked, decompressed values
        if (m_current_msg->msg_ptr->get_opcode() == frame::opcode::TEXT) {
            if (!m_current_msg->validator.decode(out.begin()+offset,out.end())) {
                ec = make_error_code(error::invalid_utf8);
                return 0;
            }
        }
""",
     """\
        // iii: text is validated once, over the whole message, in finalize_message().
"""),
    # The message's opcode, not the last frame's: a fragmented message ends with a
    # continuation frame, which the original check never looked at.
    ("processors/hybi13.hpp",
     """\
        // ensure that text messages end on a valid UTF8 code point
        if (frame::get_opcode(m_basic_header) == frame::opcode::TEXT) {
            if (!m_current_msg->validator.complete()) {
                return make_error_code(error::invalid_utf8);
            }
        }
""",
     """\
        // iii: the whole text message, once, with a SIMD validator.
        if (m_current_msg->msg_ptr->get_opcode() == frame::opcode::TEXT &&
            !::iii::detail::wspp::valid_utf8(out.data(), out.size()))
        {
            return make_error_code(error::invalid_utf8);
        }
"""),
    # Sending: same check, SIMD instead of per byte.
    ("processors/hybi13.hpp",
     "        if (op == frame::opcode::TEXT && !utf8_validator::validate(i)) {\n",
     "        if (op == frame::opcode::TEXT && !::iii::detail::wspp::valid_utf8(i.data(), i.size())) {\n"),
    ("processors/hybi13.hpp",
     """\
        frame::byte_mask(i.begin(),i.end(),o.begin(),key);
        // TODO: SIMD masking
""",
     """\
        // iii: word-wise (callers size o to at least i.size(); i and o may be one string).
        ::iii::detail::wspp::mask(reinterpret_cast<uint8_t const *>(i.data()),
            reinterpret_cast<uint8_t *>(&o[0]), i.size(), key.c);
"""),
    # Sending copied every payload twice: connection::send() copies it into a message of its
    # own, which prepare_data_frame() then copied again into a zero-filled output buffer (two
    # passes over every byte of a 64 KiB channel frame). That message is dropped once prepared,
    # so its payload is masked in place and handed over instead.
    ("processors/hybi13.hpp",
     """\
            // no compression, just copy data into the output buffer
            o.resize(i.size());

            // if we are masked, have the masking function write to the output
            // buffer directly to avoid another copy. If not masked, copy
            // directly without masking.
            if (masked) {
                this->masked_copy(i,o,key);
            } else {
                std::copy(i.begin(),i.end(),o.begin());
            }
""",
     """\
            // iii: `in` is connection::send()'s own copy, dropped once prepared: masked in
            // place and handed over rather than copied into a zero-filled buffer.
            if (masked) {
                this->masked_copy(i,i,key);
            }
            o.swap(i);
"""),
    # The send queue is a std::queue (a deque): it allocates a block and frees one every 32
    # sends even when it never holds more than one message. lib/wspp/iii_wspp_queue.hpp keeps
    # its slots.
    ("connection.hpp",
     "#include <queue>\n",
     "#include <queue>\n"
     "#include <iii_wspp_queue.hpp> // iii: a send queue that keeps its slots\n"),
    ("connection.hpp",
     "    std::queue<message_ptr> m_send_queue;\n",
     "    iii::detail::wspp::RingQueue<message_ptr> m_send_queue; // iii: see iii_wspp_queue.hpp\n"),
    # The read and write completion handlers are std::functions that websocketpp copies several
    # times per frame (into each transport call and each bind around it). A bind of a member
    # pointer and `this` is 24 bytes, too big for libstdc++'s 16-byte small buffer, so every copy
    # allocated (13 allocations per echo round trip); a lambda holding only `this` fits.
    ("connection.hpp",
     """\
      , m_handle_read_frame(lib::bind(
            &type::handle_read_frame,
            this,
            lib::placeholders::_1,
            lib::placeholders::_2
        ))
      , m_write_frame_handler(lib::bind(
            &type::handle_write_frame,
            this,
            lib::placeholders::_1
        ))
""",
     """\
      // iii: lambdas holding `this` fit std::function's small buffer: copies do not allocate.
      , m_handle_read_frame([this](lib::error_code const & ec, size_t bytes) {
            this->handle_read_frame(ec, bytes);
        })
      , m_write_frame_handler([this](lib::error_code const & ec) {
            this->handle_write_frame(ec);
        })
"""),
    # Each send that finds the writer idle dispatches write_frame as a std::function made from
    # a bind of a member pointer and a shared_ptr (32 bytes: beyond libstdc++'s 16-byte small
    # buffer, and not trivially copyable), which the strand wrap and its rewrapping copy again:
    # three allocations per message. iii_post (below) hands asio the lambda itself.
    ("impl/connection_impl.hpp",
     """\
        write_push(outgoing_msg);
        needs_writing = !m_write_flag && !m_send_queue.empty();
    }

    if (needs_writing) {
        transport_con_type::dispatch(lib::bind(
            &type::write_frame,
            type::get_shared()
        ));
    }
""",
     """\
        write_push(outgoing_msg);
        needs_writing = !m_write_flag && !m_send_queue.empty();
    }

    if (needs_writing) {
        // iii: no std::function (see transport/asio/connection.hpp iii_post)
        transport_con_type::iii_post([self = type::get_shared()] { self->write_frame(); });
    }
"""),
    # The same after a write completes with more queued (pipelined sends).
    ("impl/connection_impl.hpp",
     """\
        needs_writing = !m_send_queue.empty();
    }

    if (needs_writing) {
        transport_con_type::dispatch(lib::bind(
            &type::write_frame,
            type::get_shared()
        ));
    }
""",
     """\
        needs_writing = !m_send_queue.empty();
    }

    if (needs_writing) {
        // iii: no std::function (see transport/asio/connection.hpp iii_post)
        transport_con_type::iii_post([self = type::get_shared()] { self->write_frame(); });
    }
"""),
    # The wire copy of a message is asked for at its size (websocketpp asks for an empty one):
    # the message pool (lib/wspp/iii_wspp_pool.hpp) then keeps no huge buffer and can serve
    # small ones from its small slots.
    ("impl/connection_impl.hpp",
     """\
        outgoing_msg = m_msg_manager->get_message();
""",
     """\
        outgoing_msg = m_msg_manager->get_message(msg->get_opcode(), msg->get_payload().size()); // iii
"""),
    ("transport/asio/connection.hpp",
     """\
    lib::error_code dispatch(dispatch_handler handler) {
        if (config::enable_multithreading) {
            m_io_service->post(m_strand->wrap(handler));
        } else {
            m_io_service->post(handler);
        }
        return lib::error_code();
    }
""",
     """\
    lib::error_code dispatch(dispatch_handler handler) {
        if (config::enable_multithreading) {
            m_io_service->post(m_strand->wrap(handler));
        } else {
            m_io_service->post(handler);
        }
        return lib::error_code();
    }

    // iii: dispatch() for a handler that is not wrapped in a std::function first: asio stores
    // it in its recycled operation memory.
    template <typename Handler>
    void iii_post(Handler && handler) {
        if (config::enable_multithreading) {
            // Straight onto the strand: one queued operation, where posting a strand-wrapped
            // handler makes two (the post, then the strand's own when it is busy).
            lib::asio::post(*m_strand, std::forward<Handler>(handler));
        } else {
            m_io_service->post(std::forward<Handler>(handler));
        }
    }
"""),
    # async_write passes its buffer vector by value into asio's write operation, which copies
    # it (an allocation per write); a span of it is enough: m_bufs lives, unchanged, until
    # handle_async_write clears it.
    ("transport/asio/connection.hpp",
     """\
            m_bufs.push_back(lib::asio::buffer((*it).buf,(*it).len));
        }

        if (config::enable_multithreading) {
            lib::asio::async_write(
                socket_con_type::get_socket(),
                m_bufs,
                m_strand->wrap(make_custom_alloc_handler(
                    m_write_handler_allocator,
                    lib::bind(
                        &type::handle_async_write, get_shared(),
                        handler,
                        lib::placeholders::_1, lib::placeholders::_2
                    )
                ))
            );
        } else {
            lib::asio::async_write(
                socket_con_type::get_socket(),
                m_bufs,
                make_custom_alloc_handler(""",
     """\
            m_bufs.push_back(lib::asio::buffer((*it).buf,(*it).len));
        }

        if (config::enable_multithreading) {
            lib::asio::async_write(
                socket_con_type::get_socket(),
                std::span<lib::asio::const_buffer const>(m_bufs), // iii: not a copy
                m_strand->wrap(make_custom_alloc_handler(
                    m_write_handler_allocator,
                    lib::bind(
                        &type::handle_async_write, get_shared(),
                        handler,
                        lib::placeholders::_1, lib::placeholders::_2
                    )
                ))
            );
        } else {
            lib::asio::async_write(
                socket_con_type::get_socket(),
                std::span<lib::asio::const_buffer const>(m_bufs), // iii: not a copy
                make_custom_alloc_handler("""),
    ("transport/asio/connection.hpp",
     "#include <websocketpp/transport/asio/base.hpp>\n",
     "#include <websocketpp/transport/asio/base.hpp>\n"
     "#include <span> // iii\n"),
    # Messages from a per-connection pool (lib/wspp/iii_wspp_pool.hpp) instead of a make_shared
    # message and a new payload buffer per frame read, message sent and frame written.
    ("message_buffer/alloc.hpp",
     "#include <websocketpp/frame.hpp>\n",
     "#include <websocketpp/frame.hpp>\n"
     "#include <iii_wspp_pool.hpp> // iii: recycled messages\n"),
    ("message_buffer/alloc.hpp",
     """\
    message_ptr get_message() {
        return message_ptr(lib::make_shared<message>(type::shared_from_this()));
    }
""",
     """\
    message_ptr get_message() {
        return m_iii_pool.get(type::shared_from_this(), 0);
    }
"""),
    ("message_buffer/alloc.hpp",
     """\
    message_ptr get_message(frame::opcode::value op,size_t size) {
        return message_ptr(lib::make_shared<message>(type::shared_from_this(),op,size));
    }
""",
     """\
    message_ptr get_message(frame::opcode::value op,size_t size) {
        return m_iii_pool.get(type::shared_from_this(), size, op);
    }
"""),
    ("message_buffer/alloc.hpp",
     """\
    bool recycle(message *) {
        return false;
    }
};
""",
     """\
    bool recycle(message *) {
        return false;
    }
private:
    ::iii::detail::wspp::MessagePool<message> m_iii_pool; // iii
};
"""),
]


class PatchError(Exception):
    pass


def cxx20_fix(text):
    return DECLARATOR.sub(r"\1\2\3(", text)


def apply_patches(rel, text, patches):
    for original, replacement in patches:
        found = text.count(original)
        if found != 1:
            first = original.strip().splitlines()[0].strip()
            where = "is not there" if found == 0 else f"occurs {found} times"
            raise PatchError(
                f"websocketpp/{rel}: the text a fix-up replaces {where} "
                f"(it starts with `{first}`). These headers are not the websocketpp 0.8.2 that "
                f"tools/fix_websocketpp.py was written against; adapt its patch lists there.")
        text = text.replace(original, replacement)
    return text


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cxx20", action="store_true")
    parser.add_argument("--fast-frames", action="store_true")
    parser.add_argument("src_root", type=pathlib.Path)
    parser.add_argument("out_root", type=pathlib.Path)
    args = parser.parse_args(argv)
    src_root = args.src_root
    out_root = args.out_root / "websocketpp"

    patches = {}
    for rel, original, replacement in RACE_PATCHES + CLOSE_PATCHES + DRAIN_PATCHES:
        patches.setdefault(rel, []).append((original, replacement))
    if args.fast_frames:
        for rel, original, replacement in FAST_FRAME_PATCHES:
            patches.setdefault(rel, []).append((original, replacement))
    wanted = set(patches)
    if args.cxx20:
        wanted |= {rel for rel in CXX20_HEADERS if (src_root / rel).exists()}

    outputs = {}
    try:
        for rel in sorted(wanted):
            src = src_root / rel
            if not src.exists():
                raise PatchError(f"no {src}: cannot write the corrected copy of websocketpp/{rel}")
            text = src.read_text()
            if args.cxx20 and rel in CXX20_HEADERS:
                text = cxx20_fix(text)
            if rel in patches:
                text = apply_patches(rel, text, patches[rel])
            outputs[rel] = text
    except PatchError as e:
        print(f"fix_websocketpp.py: {e}", file=sys.stderr)
        return 2

    for rel, text in outputs.items():
        dst = out_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists() or dst.read_text() != text:
            dst.write_text(text)
    if out_root.exists():
        for stale in out_root.rglob("*.hpp"):
            if stale.relative_to(out_root).as_posix() not in outputs:
                stale.unlink()
    digest = hashlib.sha1()
    for rel in sorted(outputs):
        digest.update(rel.encode() + b"\0" + outputs[rel].encode() + b"\0")
    print(digest.hexdigest()[:16])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
