/*
 * The aarch64 (AAPCS64) context switch.
 *
 *   void asyncio__coro_switch_asm(void **save_sp, void *load_sp)
 *
 * Saves x19-x30 and d8-d15 (the callee-saved registers; x30 holds the
 * return address) in a 176-byte frame on the current stack, stores sp in
 * *save_sp, loads load_sp and restores the frame found there.  A fresh stack
 * is laid out by asyncio__coro_init to "return" into asyncio__coro_trampoline
 * with x19 = argument and x20 = entry function.
 */
        .text
        .globl  asyncio__coro_switch_asm
        .hidden asyncio__coro_switch_asm
        .type   asyncio__coro_switch_asm, %function
        .p2align 4
asyncio__coro_switch_asm:
        .cfi_startproc
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        ret
        .cfi_endproc
        .size   asyncio__coro_switch_asm, .-asyncio__coro_switch_asm

/*
 *   void asyncio__coro_start_asm(void **save_sp, void *stack_top,
 *                                asyncio__coro_t *(*entry)(void *), void *arg)
 *
 * Saves the current context as the switch does, moves to stack_top (16-byte
 * aligned) and calls entry(arg) there with x29 = 0, which ends frame-pointer
 * walks.  When entry returns a context, that context's saved frame is
 * restored and its switch returns: if entry never switched away, that is the
 * context saved here and the return pairs with the call of this function.
 */
        .globl  asyncio__coro_start_asm
        .hidden asyncio__coro_start_asm
        .type   asyncio__coro_start_asm, %function
        .p2align 4
asyncio__coro_start_asm:
        .cfi_startproc
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1
        .cfi_undefined x30
        mov     x29, #0
        mov     x0, x3
        blr     x2
        ldr     x9, [x0]
        mov     sp, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        ret
        .cfi_endproc
        .size   asyncio__coro_start_asm, .-asyncio__coro_start_asm

        .globl  asyncio__coro_trampoline
        .hidden asyncio__coro_trampoline
        .type   asyncio__coro_trampoline, %function
        .p2align 4
asyncio__coro_trampoline:
        .cfi_startproc
        .cfi_undefined x30
        mov     x0, x19
        blr     x20
        brk     #0
        .cfi_endproc
        .size   asyncio__coro_trampoline, .-asyncio__coro_trampoline

        .section .note.GNU-stack,"",%progbits
