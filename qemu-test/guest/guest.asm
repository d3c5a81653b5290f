; Cairn lab test guest: a 512-byte boot sector for legacy BIOS (SeaBIOS) on a PC with IDE.
;
; Once a second (18 BIOS timer ticks) it
;   1. prints `HEARTBEAT <n>` on COM1 (n counts from 1 in memory: a live migration keeps it),
;   2. appends the next sequence number s to its disk: sector DATA_LBA+s holds "CAIRNSEQ" and s,
;      sector HEADER_LBA holds "CAIRNSEQ" and the last s,
;   3. issues ATA FLUSH CACHE and, once the drive reports it done without error, prints
;      `FLUSHED <s>`. A number printed as flushed is on stable storage.
; At boot it reads the header so s continues after what the disk already holds (a clone
; continues from its origin's last number). Disk I/O is ATA PIO on the primary IDE channel
; (ports 0x1F0-0x1F7), the boot disk.
;
; ACPI: by default the guest has no ACPI code at all and ignores power-button requests, so a
; graceful shutdown never completes: the host must force it off. Assembled with
; -DACPI_POWEROFF (build.sh builds both variants) it powers off on the power button: at boot
; it reads the PIIX4 power-management I/O base (PCI 00:01.3, register 0x40; kept in FS) and
; enables the power-button event (PM1_EN.PWRBTN_EN); after each wake-up it polls
; PM1_STS.PWRBTN_STS and, when set, writes SLP_EN with SLP_TYP 0 to PM1_CNT (S5: QEMU powers
; off, a guest-initiated shutdown).

bits 16
org 0x7c00

COM1        equ 0x3f8
ATA         equ 0x1f0
HEADER_LBA  equ 1
DATA_LBA    equ 2
BUF         equ 0x0600              ; one sector of scratch memory below us

start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    sti
    cld
%ifdef ACPI_POWEROFF
    ; PM base from PCI 00:01.3 reg 0x40 into FS; PM1_EN = PWRBTN_EN.
    mov eax, 0x80000b40
    mov dx, 0xcf8
    out dx, eax
    mov dl, 0xfc
    in eax, dx
    and al, 0xc0
    xchg ax, dx
    mov fs, dx
    inc dx
    inc dx
    mov ax, 0x0100
    out dx, ax
%endif

    mov si, msg_boot
    call puts

    ; Read the header: continue after the last flushed number if it is ours.
    mov eax, HEADER_LBA
    call ata_read
    jc fail
    xor ebx, ebx
    mov si, BUF
    mov di, magic
    mov cx, 8
    repe cmpsb
    jne .fresh
    mov ebx, [BUF + 8]
.fresh:
    mov [seq], ebx
    mov si, msg_resume
    call puts
    mov eax, ebx
    call putn

    mov ebp, [0x046c]               ; BIOS tick counter (18.2 Hz)
beat:
    hlt                             ; wait for the next interrupt (the timer)
%ifdef ACPI_POWEROFF
    mov dx, fs                      ; PM1_STS.PWRBTN_STS set?
    in ax, dx
    shr ah, 1
    jc acpi_off
%endif
    mov eax, [0x046c]
    sub eax, ebp
    cmp eax, 18
    jb beat
    add ebp, 18

    inc dword [count]
    mov si, msg_beat
    call puts
    mov eax, [count]
    call putn

    ; Sector with "CAIRNSEQ" + s, written at DATA_LBA + s, then the header.
    inc dword [seq]
    call fill
    mov eax, [seq]
    add eax, DATA_LBA
    call ata_write
    jc fail
    call fill
    mov eax, HEADER_LBA
    call ata_write
    jc fail
    mov al, 0xe7                    ; FLUSH CACHE
    call ata_cmd
    call ata_wait
    jc fail
    mov si, msg_flushed
    call puts
    mov eax, [seq]
    call putn
    jmp beat

fail:
    mov si, msg_fail
    call puts
.halt:
    hlt
    jmp .halt

; Fill BUF with "CAIRNSEQ", the sequence number, and zeros.
fill:
    mov di, BUF
    mov cx, 256
    xor ax, ax
    rep stosw
    mov di, BUF
    mov si, magic
    mov cx, 8
    rep movsb
    mov eax, [seq]
    mov [BUF + 8], eax
    ret

; Select LBA28 sector EAX, count 1, and issue command CL.
ata_setup:
    push eax
    mov dx, ATA + 2
    mov al, 1
    out dx, al
    pop eax
    inc dx                          ; 0x1f3..0x1f5: LBA bits 0-23
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    shr eax, 8
    and al, 0x0f
    or al, 0xe0                     ; LBA mode, master
    inc dx
    out dx, al
    mov al, cl
    ; fall through
ata_cmd:
    mov dx, ATA + 7
    out dx, al
    ret

; Wait until not busy; CF set on ERR/DF. Leaves the status in AL.
ata_wait:
    mov dx, ATA + 7
.poll:
    in al, dx
    test al, 0x80
    jnz .poll
    test al, 0x21
    jz .ok
    stc
    ret
.ok:
    clc
    ret

; Read sector EAX into BUF (CF on error).
ata_read:
    mov cl, 0x20
    call ata_setup
    call ata_wait
    jc .out
    mov dx, ATA
    mov di, BUF
    mov cx, 256
    rep insw
    clc
.out:
    ret

; Write BUF to sector EAX (CF on error).
ata_write:
    mov cl, 0x30
    call ata_setup
    call ata_wait
    jc .out
    mov dx, ATA
    mov si, BUF
    mov cx, 256
    rep outsw
    call ata_wait
.out:
    ret

; Print the zero-terminated string at SI on COM1.
puts:
    lodsb
    test al, al
    jz .done
    call putc
    jmp puts
.done:
    ret

putc:
    push ax
    mov dx, COM1 + 5
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    pop ax
    mov dx, COM1
    out dx, al
    ret

; Print EAX in decimal, then CR LF.
putn:
    mov ecx, 10
    xor bx, bx
.div:
    xor edx, edx
    div ecx
    push dx
    inc bx
    test eax, eax
    jnz .div
.out:
    pop ax
    add al, '0'
    call putc
    dec bx
    jnz .out
    mov al, 13
    call putc
    mov al, 10
    jmp putc

%ifdef ACPI_POWEROFF
acpi_off:                           ; PM1_CNT = SLP_EN | SLP_TYP 0 (S5)
    add dx, 4
    mov ax, 0x2000
    out dx, ax
    jmp fail.halt
%endif

magic       db "CAIRNSEQ"
msg_boot    db 13, 10, "CAIRN GUEST", 13, 10, 0
msg_resume  db "RESUME ", 0
msg_beat    db "HEARTBEAT ", 0
msg_flushed db "FLUSHED ", 0
msg_fail    db "DISK ERROR", 13, 10, 0
count       dd 0
seq         dd 0

times 510 - ($ - $$) db 0
dw 0xaa55
